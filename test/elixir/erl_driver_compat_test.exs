defmodule ErlDriverCompatTest do
  # Not async: driver_info/1 counts the open ports of a driver and ports/0
  # lists all pseudo-ports of the VM.
  use ExUnit.Case, async: false

  import ErlDriverCompat.TestSupport

  @driver "echo_drv"

  setup_all do
    holder = start_holder([@driver])
    on_exit(fn -> stop_holder(holder) end)
    :ok
  end

  test "every function of :erl_driver_compat has its Elixir delegate" do
    Code.ensure_loaded!(ErlDriverCompat)

    missing =
      for {name, arity} <- :erl_driver_compat.module_info(:exports),
          name != :module_info,
          not function_exported?(ErlDriverCompat, name, arity),
          do: {name, arity}

    assert missing == []
  end

  describe "drivers" do
    test "load_driver/2, loaded_drivers/0, driver_info/1 and unload_driver/1" do
      dir = drivers_dir()
      # Elixir string, charlist and atom arguments are all accepted.
      assert ErlDriverCompat.load_driver(dir, @driver) == :ok
      assert ErlDriverCompat.load_driver(String.to_charlist(dir), :echo_drv) == :ok

      # Strings (charlists), as erl_ddll:loaded_drivers/0 gives them.
      assert {:ok, names} = ErlDriverCompat.loaded_drivers()
      assert ~c"echo_drv" in names

      info = ErlDriverCompat.driver_info(@driver)
      assert info.path == String.to_charlist(Path.join(dir, @driver <> ".so"))
      assert info.version == {3, 3}
      assert info.locking == :driver
      assert info.ports == 0
      assert ErlDriverCompat.driver_info(:echo_drv) == info
      assert ErlDriverCompat.driver_info(~c"echo_drv") == info

      # Two references from this process; the holder keeps the third.
      assert ErlDriverCompat.unload_driver(@driver) == :ok
      assert ErlDriverCompat.unload_driver(~c"echo_drv") == :ok

      assert ErlDriverCompat.unload_driver(@driver) ==
               {:error, :not_loaded_by_this_process}

      assert ErlDriverCompat.driver_info(@driver) == info
    end

    test "reference counting gives the same replies as erl_ddll" do
      scenario = fn b ->
        dir = String.to_charlist(drivers_dir())
        name = String.to_charlist(@driver)

        [
          b.load_driver.(dir, name),
          b.load_driver.(dir, name),
          b.unload_driver.(name),
          b.unload_driver.(name),
          b.unload_driver.(name),
          b.unload_driver.(~c"never_loaded_drv")
        ]
      end

      expected = [
        :ok,
        :ok,
        :ok,
        :ok,
        {:error, :not_loaded_by_this_process},
        {:error, :not_loaded}
      ]

      assert both(scenario) == {expected, expected}
    end

    test "a missing driver file is an error that format_error/1 explains" do
      assert {:error, {:open_error, detail} = reason} =
               ErlDriverCompat.load_driver("/nonexistent", "no_such_drv")

      text = IO.chardata_to_string(ErlDriverCompat.format_error(reason))
      refute text =~ "Unknown erl_driver_compat error"
      assert text =~ "Cannot open the driver"
      assert text =~ IO.chardata_to_string(detail)

      # erl_ddll gives the same reason (with a numeric detail).
      assert {:error, {:open_error, _}} = :erl_ddll.load_driver(~c"/nonexistent", ~c"no_such_drv")

      assert ErlDriverCompat.driver_info("no_such_drv") == :undefined
      assert {:ok, names} = ErlDriverCompat.loaded_drivers()
      refute ~c"no_such_drv" in names
    end

    test "format_error/1 gives erl_ddll's text for the reasons both share" do
      for reason <- [
            :not_loaded,
            :not_loaded_by_this_process,
            :no_driver_init,
            :driver_init_failed,
            :driver_incorrect_version,
            :bad_driver_name
          ] do
        assert ErlDriverCompat.format_error(reason) == :erl_ddll.format_error(reason)
      end

      assert ErlDriverCompat.format_error(:not_loaded) == ~c"DDLL driver is not loaded"

      assert ErlDriverCompat.format_error(:not_loaded_by_this_process) ==
               ~c"DDLL driver was not loaded by this process"

      assert IO.chardata_to_string(
               ErlDriverCompat.format_error(
                 {:unsupported_functions, [~c"driver_a", ~c"driver_b"]}
               )
             ) ==
               "The driver uses erl_driver functions that erl_driver_compat does not " <>
                 "implement yet: driver_a, driver_b"

      assert_raise ArgumentError, fn -> ErlDriverCompat.format_error({:something, "else"}) end
    end

    test "check_driver/2 reports a driver's API imports without loading it" do
      dir = drivers_dir()
      assert {:ok, report} = ErlDriverCompat.check_driver(dir, @driver)
      assert report.file == String.to_charlist(Path.join(dir, @driver <> ".so"))
      assert report.driver_init == true
      assert report.unsupported == []

      assert Enum.sort(report.api_imports) == [
               ~c"driver_alloc",
               ~c"driver_alloc_binary",
               ~c"driver_free",
               ~c"driver_output",
               ~c"set_port_control_flags"
             ]

      assert ErlDriverCompat.check_driver(String.to_charlist(dir), :echo_drv) == {:ok, report}
      assert {:error, {:open_error, _}} = ErlDriverCompat.check_driver("/nonexistent", @driver)
    end

    test "include_dir/0 holds our erl_driver.h" do
      dir = to_string(ErlDriverCompat.include_dir())
      assert Path.basename(dir) == "include"
      assert Path.basename(Path.dirname(dir)) == "priv"
      assert File.read!(Path.join(dir, "erl_driver.h")) =~ "ErlDrvEntry"
    end
  end

  describe "pseudo-ports" do
    test "open_port/2 opens a pseudo-port owned by the caller" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert is_pid(port)
      assert ErlDriverCompat.is_port(port)
      refute Kernel.is_port(port)
      refute ErlDriverCompat.is_port(self())
      assert port in ErlDriverCompat.ports()
      assert ErlDriverCompat.driver_info(@driver).ports == 1
      {:links, links} = Process.info(self(), :links)
      assert port in links

      # Charlist commands and spawn_driver work too.
      port2 = ErlDriverCompat.open_port({:spawn_driver, ~c"echo_drv"}, [])
      assert ErlDriverCompat.ports() -- [port, port2] == []
      assert ErlDriverCompat.driver_info(@driver).ports == 2

      assert ErlDriverCompat.port_close(port2)
      assert ErlDriverCompat.port_close(port)
      assert ErlDriverCompat.ports() == []
      assert ErlDriverCompat.driver_info(@driver).ports == 0
    end

    test "info/0 counts the open pseudo-ports" do
      before = ErlDriverCompat.info()
      assert before.drivers >= 1
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.info().ports == before.ports + 1
      assert ErlDriverCompat.port_close(port)
      assert ErlDriverCompat.info().ports == before.ports
    end

    test "port_command/2,3 data comes back as {port, {:data, data}}" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.port_command(port, "hello") == true
      assert_receive {^port, {:data, "hello"}}

      assert ErlDriverCompat.port_command(port, ["he", ~c"l", ?l, "o" | "!"]) == true
      assert_receive {^port, {:data, "hello!"}}

      assert ErlDriverCompat.port_command(port, "again", [:nosuspend]) == true
      assert_receive {^port, {:data, "again"}}

      big = :binary.copy("0123456789", 10_000)
      assert ErlDriverCompat.port_command(port, big) == true
      assert_receive {^port, {:data, ^big}}

      # Without :binary the data is a charlist.
      list_port = ErlDriverCompat.open_port({:spawn, @driver}, [])
      assert ErlDriverCompat.port_command(list_port, "hi") == true
      assert_receive {^list_port, {:data, ~c"hi"}}

      assert ErlDriverCompat.port_close(list_port)
      assert ErlDriverCompat.port_close(port)
      refute_received _
    end

    test "port messages: {owner, {:command, data}} and {owner, :close}" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      send(port, {self(), {:command, "by message"}})
      assert_receive {^port, {:data, "by message"}}
      send(port, {self(), :close})
      assert_receive {^port, :closed}
      assert eventually(fn -> not ErlDriverCompat.is_port(port) end)
    end

    test "port_control/3 echoes its data as a binary" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.port_control(port, 1, "x") == "x"
      assert ErlDriverCompat.port_control(port, 2, ["a", ~c"bc"]) == "abc"
      assert ErlDriverCompat.port_control(port, 3, "") == ""
      # Larger than the default reply buffer: the driver allocates a binary.
      big = :binary.copy("y", 5_000)
      assert ErlDriverCompat.port_control(port, 4, big) == big
      assert ErlDriverCompat.port_close(port)
    end

    test "port_call/3 echoes its term" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.port_call(port, 7, {:ok, 42}) == {:ok, 42}
      term = %{list: Enum.to_list(1..1_000), text: "elixir", atom: :yes}
      assert ErlDriverCompat.port_call(port, 0, term) == term
      assert ErlDriverCompat.port_close(port)
    end

    test "port_close/1 stops the port; using it afterwards raises ArgumentError" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.port_close(port) == true
      refute ErlDriverCompat.is_port(port)
      refute port in ErlDriverCompat.ports()
      assert ErlDriverCompat.port_info(port) == :undefined
      assert ErlDriverCompat.port_info(port, :name) == :undefined

      assert_raise ArgumentError, fn -> ErlDriverCompat.port_command(port, "x") end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_command(port, "x", []) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_control(port, 1, "x") end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_call(port, 1, :x) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_close(port) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_connect(port, self()) end
      refute_received _
    end

    @tag :capture_log
    test "bad arguments raise ArgumentError" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_control(port, 1, :not_iodata) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_command(port, :not_iodata) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_command(port, "x", [:bogus]) end
      assert_raise ArgumentError, fn -> ErlDriverCompat.port_info(port, :bogus) end

      assert_raise ArgumentError, fn ->
        ErlDriverCompat.open_port({:spawn, @driver}, [:bogus_option])
      end

      # Still usable after the failed calls.
      assert ErlDriverCompat.port_control(port, 1, "ok") == "ok"
      assert ErlDriverCompat.port_close(port)
    end

    test "port_info/1,2" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      assert ErlDriverCompat.port_command(port, "hello")
      assert_receive {^port, {:data, "hello"}}

      info = ErlDriverCompat.port_info(port)
      assert Keyword.keys(info) == [:name, :links, :id, :connected, :input, :output, :os_pid]
      assert info[:name] == ~c"echo_drv"
      assert info[:links] == [self()]
      assert info[:connected] == self()
      assert is_integer(info[:id])
      assert info[:input] == 5
      assert info[:output] == 5
      assert info[:os_pid] == :undefined

      assert ErlDriverCompat.port_info(port, :name) == {:name, ~c"echo_drv"}
      assert ErlDriverCompat.port_info(port, :connected) == {:connected, self()}
      assert ErlDriverCompat.port_info(port, :links) == {:links, [self()]}
      assert ErlDriverCompat.port_info(port, :id) == {:id, info[:id]}
      assert ErlDriverCompat.port_info(port, :locking) == {:locking, :driver_level}
      assert ErlDriverCompat.port_info(port, :queue_size) == {:queue_size, 0}
      assert ErlDriverCompat.port_info(port, :registered_name) == []
      assert ErlDriverCompat.port_close(port)
    end

    test "port_connect/2 hands the port to another process" do
      port = ErlDriverCompat.open_port({:spawn, @driver}, [:binary])
      test_pid = self()

      other =
        spawn_link(fn ->
          receive do
            {^port, {:data, data}} -> send(test_pid, {:forwarded, data})
          end

          receive do
            :done -> :ok
          end
        end)

      assert ErlDriverCompat.port_connect(port, other) == true
      assert ErlDriverCompat.port_info(port, :connected) == {:connected, other}
      assert ErlDriverCompat.port_command(port, "to the new owner")
      assert_receive {:forwarded, "to the new owner"}
      refute_received {^port, _}
      assert ErlDriverCompat.port_close(port)
      send(other, :done)
    end

    test "a name that is not a driver loaded through us opens a native port" do
      # {:spawn, "cat"} starts the external program, as erlang:open_port/2 does.
      port = ErlDriverCompat.open_port({:spawn, "cat"}, [:binary])
      assert Kernel.is_port(port)
      assert ErlDriverCompat.is_port(port)
      refute port in ErlDriverCompat.ports()
      assert ErlDriverCompat.port_command(port, "through cat") == true
      assert_receive {^port, {:data, "through cat"}}
      assert ErlDriverCompat.port_info(port, :name) == {:name, ~c"cat"}
      assert ErlDriverCompat.port_close(port) == true
      # is_port/1 of a native port is erlang:is_port/1, a type test.
      assert ErlDriverCompat.is_port(port)
      assert ErlDriverCompat.port_info(port) == :undefined

      assert_raise ArgumentError, fn ->
        ErlDriverCompat.open_port({:spawn_driver, "no_such_driver_xyz"}, [])
      end
    end
  end

  describe "compared with native ports" do
    test "the echo cycle" do
      scenario = fn b ->
        port = b.open_port.({:spawn, @driver}, [:binary])
        true = b.port_command.(port, ["he", "llo"])
        msg = recv()
        ctl = b.port_control.(port, 1, "x")
        big = :binary.copy("z", 3_000)
        ctl_big = b.port_control.(port, 2, big) == big
        call = b.port_call.(port, 7, {:ok, 42})
        connected = b.port_info2.(port, :connected)
        name = b.port_info2.(port, :name)
        io = {b.port_info2.(port, :input), b.port_info2.(port, :output)}
        is_port = b.is_port.(port)
        closed = b.port_close.(port)

        after_close =
          try do
            b.port_control.(port, 1, "x")
          rescue
            e -> {:raised, e.__struct__}
          end

        {msg, ctl, ctl_big, call, connected, name, io, is_port, closed, after_close,
         b.port_info.(port), flush()}
      end

      expected =
        {{{:port, 1}, {:data, "hello"}}, "x", true, {:ok, 42}, {:connected, :self},
         {:name, ~c"echo_drv"}, {{:input, 5}, {:output, 5}}, true, true, {:raised, ArgumentError},
         :undefined, []}

      assert both(scenario) == {expected, expected}
    end

    test "list mode" do
      scenario = fn b ->
        port = b.open_port.({:spawn, @driver}, [])
        true = b.port_command.(port, "hi")
        msg = recv()
        ctl = b.port_control.(port, 1, ~c"abc")
        true = b.port_close.(port)
        {msg, ctl}
      end

      expected = {{{:port, 1}, {:data, ~c"hi"}}, "abc"}
      assert both(scenario) == {expected, expected}
    end

    test "port messages" do
      scenario = fn b ->
        port = b.open_port.({:spawn, @driver}, [:binary])
        send(port, {self(), {:command, "one"}})
        send(port, {self(), {:command, ["tw", "o"]}})
        send(port, {self(), :close})
        msgs = [recv(), recv(), recv()]
        {msgs, eventually(fn -> b.port_info.(port) == :undefined end), flush()}
      end

      expected =
        {[
           {{:port, 1}, {:data, "one"}},
           {{:port, 1}, {:data, "two"}},
           {{:port, 1}, :closed}
         ], true, []}

      assert both(scenario) == {expected, expected}
    end

    test "port_close/1 of a linked port seen by an owner trapping exits" do
      scenario = fn b ->
        Process.flag(:trap_exit, true)
        port = b.open_port.({:spawn, @driver}, [:binary])
        true = b.port_close.(port)
        {recv(), flush()}
      end

      expected = {{:EXIT, {:port, 1}, :normal}, []}
      assert both(scenario) == {expected, expected}
    end

    test "port_connect/2" do
      scenario = fn b ->
        me = self()
        port = b.open_port.({:spawn, @driver}, [:binary])

        # Stays alive until the end: a port closes when its owner exits.
        other =
          spawn(fn ->
            receive do
              m -> send(me, {:forwarded, m})
            end

            receive do
              :done -> :ok
            end
          end)

        true = b.port_connect.(port, other)
        connected = b.port_info2.(port, :connected)
        # Natively the link exists when port_connect returns; a pseudo-port
        # links when its process handles the request, so wait for it.
        linked = eventually(fn -> other in elem(b.port_info2.(port, :links), 1) end)
        {:links, links} = b.port_info2.(port, :links)
        true = b.port_command.(port, "x")
        forwarded = recv()
        true = b.port_close.(port)
        send(other, :done)
        # The order of links is not specified.
        {connected, linked, {:links, length(links), me in links, other in links}, forwarded,
         flush()}
      end

      expected =
        {{:connected, :pid}, true, {:links, 2, true, true},
         {:forwarded, {{:port, 1}, {:data, "x"}}}, []}

      assert both(scenario) == {expected, expected}
    end

    test "the owner's exit closes the port" do
      scenario = fn b ->
        me = self()

        owner =
          spawn(fn ->
            Process.put(:edc_ports, [])
            send(me, {:port, b.open_port.({:spawn, @driver}, [:binary])})

            receive do
              :exit -> :ok
            end
          end)

        port =
          receive do
            {:port, p} -> p
          end

        Process.put(:edc_ports, [port])
        open_before = b.port_info.(port) != :undefined
        send(owner, :exit)
        {open_before, eventually(fn -> b.port_info.(port) == :undefined end), flush()}
      end

      expected = {true, true, []}
      assert both(scenario) == {expected, expected}
    end

    @tag :capture_log
    test "bad arguments" do
      scenario = fn b ->
        port = b.open_port.({:spawn, @driver}, [:binary])

        attempt = fn f ->
          try do
            f.()
          rescue
            e -> {:raised, e.__struct__}
          end
        end

        results = [
          attempt.(fn -> b.port_control.(port, 1, :not_iodata) end),
          attempt.(fn -> b.port_command.(port, :not_iodata) end),
          attempt.(fn -> b.port_command.(port, [1, :not_a_byte]) end),
          attempt.(fn -> b.port_command3.(port, "x", [:bogus]) end),
          attempt.(fn -> b.port_info2.(port, :bogus) end),
          attempt.(fn -> b.open_port.({:spawn, @driver}, [:bogus_option]) end),
          attempt.(fn -> b.port_connect.(port, :not_a_pid) end)
        ]

        true = b.port_close.(port)
        {results, flush()}
      end

      expected = {List.duplicate({:raised, ArgumentError}, 7), []}
      assert both(scenario) == {expected, expected}
    end
  end
end

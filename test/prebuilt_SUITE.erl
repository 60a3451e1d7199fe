%% Debian's own prebuilt drivers run unmodified through erl_driver_compat
%% and behave as under erl_ddll: megaco's flex scanner (both builds)
%% scanning Megaco text messages, and runtime_tools' trace drivers
%% (trace_file_drv writing a trace file, trace_ip_drv streaming to a TCP
%% client). Each scenario runs natively (erl_ddll + the port BIFs) and
%% through erl_driver_compat, from the same .so in the OTP installation
%% (found with code:lib_dir/2), and the observations must be equal. A
%% driver whose package is not installed skips its cases with a reason.
-module(prebuilt_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2]).
-export([megaco_scan/1,
         megaco_scan_mt/1,
         megaco_scan_errors/1,
         trace_file/1,
         trace_file_wrap/1,
         trace_ip_stream/1,
         check_reports_debian_drivers/1,
         check_tool_output/1]).

-define(MEGACO, "megaco_flex_scanner_drv").
-define(MEGACO_MT, "megaco_flex_scanner_drv_mt").

all() ->
    [megaco_scan, megaco_scan_mt, megaco_scan_errors,
     trace_file, trace_file_wrap, trace_ip_stream,
     check_reports_debian_drivers, check_tool_output].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erl_driver_compat),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    Config.

%% Directory of App's drivers, or {skip, Reason} when App or the file is
%% missing.
driver_dir(App, Name) ->
    case code:lib_dir(App, priv) of
        {error, _} ->
            {skip, lists:flatten(io_lib:format("~p is not installed", [App]))};
        Priv ->
            Dir = filename:join(Priv, "lib"),
            case filelib:is_regular(filename:join(Dir, Name ++ ".so")) of
                true -> Dir;
                false ->
                    {skip, lists:flatten(io_lib:format("~ts.so not in ~ts", [Name, Dir]))}
            end
    end.

with_driver(App, Name, Fun) ->
    case driver_dir(App, Name) of
        {skip, _} = Skip -> Skip;
        Dir -> Fun(Dir)
    end.

%%--------------------------------------------------------------------
%% megaco_flex_scanner_drv: port_control(P, $s, Msg) sends the scanner's
%% process {tokens, Tokens, LastLine} (erl_drv_send_term) and returns [];
%% a scan error is the control's reply (as megaco_flex_scanner:scan/2
%% reads it).

megaco_scan(_Config) ->
    with_driver(megaco, ?MEGACO, fun(Dir) -> scan_all(Dir, ?MEGACO) end).

megaco_scan_mt(_Config) ->
    with_driver(megaco, ?MEGACO_MT, fun(Dir) -> scan_all(Dir, ?MEGACO_MT) end).

scan_all(Dir, Name) ->
    Results = edc_diff:compare(Name, fun(B) -> scan(B, Dir, Name, messages()) end),
    %% The messages gave token lists (the native run's own statement);
    %% the scanner's own errors (the second message's SDP) are replies.
    true = length(Results) =:= length(messages()),
    Tokens = [R || {[], {tokens, [_ | _], _}} = R <- Results],
    true = length(Tokens) >= 3,
    ok.

megaco_scan_errors(_Config) ->
    with_driver(megaco, ?MEGACO_MT,
                fun(Dir) ->
                        Bad = [<<"!/1 [124.124.124.222]:55555\nT = 1 { \"unterminated">>,
                               <<>>,
                               <<"\x01\x02\x03\xff">>],
                        Results = edc_diff:compare(
                                    "megaco errors",
                                    fun(B) -> scan(B, Dir, ?MEGACO_MT, Bad) end),
                        true = length(Bad) =:= length(Results),
                        ok
                end).

scan(#{load_driver := Load, open_port := Open, port_control := Control,
       port_close := Close, unload_driver := Unload}, Dir, Name, Msgs) ->
    ok = Load(Dir, Name),
    P = Open({spawn, Name}, [binary]),
    Results = [begin
                   Reply = Control(P, $s, Msg),
                   {Reply, receive Tokens -> Tokens after 5000 -> no_message end}
               end || Msg <- Msgs],
    true = Close(P),
    ok = Unload(Name),
    Results.

messages() ->
    [<<"!/1 [124.124.124.222]:55555\nTransaction = 9998 {\n Context = - {\n"
       "  ServiceChange = ROOT {\n   Services {\n    Method = Restart,\n"
       "    ServiceChangeAddress = 55555, Profile = ResGW/1,\n"
       "    Reason = \"901 Cold Boot\"\n   }\n  }\n }\n}\n">>,
     <<"MEGACO/2 [123.123.123.4]:55555\nReply = 10003 {\n Context = 2000 {\n"
       "  Add = A4444,\n  Add = $ {\n   Media {\n    Stream = 1 {\n"
       "     Local {\nv=0\nc=IN IP4 124.124.124.222\nm=audio 2222 RTP/AVP 4\n"
       "a=ptime:30\na=recvonly\n     } ; RTP profile for G.723.1 is 4\n"
       "    }\n   }\n  }\n }\n}\n">>,
     <<"!/3 [124.124.124.222]:55555 T=10000{C=-{N=t1/1{OE=1{20010101T10000000:"
       "al/of}}}}">>,
     <<"MEGACO/1 <mg1.example.net>\nTransaction = 50007 {\n Context = - {\n"
       "  Modify = A4444 {\n   Media { Stream = 1 { Mode = SendReceive,\n"
       "    Remote { v=0 } } },\n   Events = 2223 { al/on, dd/ce {DigitMap = Dialplan0} },\n"
       "   Signals { cg/rt }, DigitMap = Dialplan0 {\n"
       "    (0s| 00s|[1-7]xlxx|8lxxxxxxx|#xxxxxxx|*xx|9l1xxxxxxxxxx|9l011x.s)}\n"
       "  }\n }\n}\n">>].

%%--------------------------------------------------------------------
%% trace_file_drv: the command strings dbg:trace_port(file, ...) uses
%% ("trace_file_drv n File", "trace_file_drv w Size Cnt Time Len n File"),
%% the same trace binaries as port commands, port_control $f (flush):
%% the files written must be byte-equal.

trace_file(Config) ->
    with_driver(runtime_tools, "trace_file_drv",
                fun(Dir) -> trace_file_case(Config, Dir, nowrap) end).

trace_file_wrap(Config) ->
    with_driver(runtime_tools, "trace_file_drv",
                fun(Dir) -> trace_file_case(Config, Dir, wrap) end).

trace_file_case(Config, Dir, Mode) ->
    Priv = ?config(priv_dir, Config),
    Native = trace_file_run(native, Dir, filename:join(Priv, "native_" ++ atom_to_list(Mode)), Mode),
    Compat = trace_file_run(compat, Dir, filename:join(Priv, "compat_" ++ atom_to_list(Mode)), Mode),
    {NReplies, NFiles} = Native,
    {CReplies, CFiles} = Compat,
    NReplies = CReplies,
    true = NFiles =/= [],
    %% Same files (by suffix), same bytes.
    NFiles = CFiles,
    ok.

trace_file_run(Kind, Dir, Base, Mode) ->
    Name = filename:absname(Base),
    [file:delete(F) || F <- filelib:wildcard(Name ++ "*")],
    Command = case Mode of
                  nowrap -> "trace_file_drv n " ++ Name;
                  wrap -> lists:flatten(io_lib:format("trace_file_drv w ~p ~p ~p ~p n ~ts.",
                                                      [1000, 3, 0, length(Name), Name]))
              end,
    Events = [term_to_binary(T) || T <- trace_events()],
    Replies = edc_diff:run(
                Kind,
                fun(#{load_driver := Load, open_port := Open, port_command := Cmd,
                      port_control := Control, port_close := Close,
                      unload_driver := Unload}) ->
                        ok = Load(Dir, "trace_file_drv"),
                        P = Open({spawn, Command}, [eof]),
                        Sent = [Cmd(P, E) || E <- Events],
                        Flushed = Control(P, $f, ""),
                        Unknown = try Control(P, $x, "")
                                  catch Class:Reason -> {Class, Reason}
                                  end,
                        true = Close(P),
                        ok = Unload("trace_file_drv"),
                        {lists:usort(Sent), Flushed, Unknown}
                end),
    Files = [{lists:nthtail(length(Name), F), element(2, file:read_file(F))}
             || F <- lists:sort(filelib:wildcard(Name ++ "*"))],
    {Replies, Files}.

trace_events() ->
    Pid = self(),
    [{trace, Pid, call, {lists, seq, [1, N]}} || N <- lists:seq(1, 40)]
        ++ [{trace_ts, Pid, 'receive', {msg, lists:duplicate(N, $x)}, {1, 2, N}}
            || N <- lists:seq(1, 40)].

%%--------------------------------------------------------------------
%% trace_ip_drv: "trace_ip_drv Port QueueSize Flags" (dbg's command
%% string); a TCP client connects, the same trace binaries go in as port
%% commands, and the byte stream the client reads must be equal, as must
%% the $p control reply (a 3-byte driver binary returned with length 0).

trace_ip_stream(_Config) ->
    with_driver(runtime_tools, "trace_ip_drv",
                fun(Dir) ->
                        Native = trace_ip_run(native, Dir),
                        Compat = trace_ip_run(compat, Dir),
                        {{ok, NCtl, NBytes}, {ok, CCtl, CBytes}} = {Native, Compat},
                        <<0, _:16>> = NCtl,
                        {_, _, true} = {NCtl, CCtl, size(NCtl) =:= size(CCtl)},
                        NBytes = CBytes,
                        true = byte_size(NBytes) > 0,
                        ok
                end).

trace_ip_run(Kind, Dir) ->
    {ok, L} = gen_tcp:listen(0, [{reuseaddr, true}]),
    {ok, IpPort} = inet:port(L),
    ok = gen_tcp:close(L),
    Msgs = [term_to_binary(T) || T <- trace_events()],
    Expected = lists:sum([5 + byte_size(M) || M <- Msgs]),
    edc_diff:run(
      Kind,
      fun(#{load_driver := Load, open_port := Open, port_command := Cmd,
            port_control := Control, port_close := Close, unload_driver := Unload}) ->
              ok = Load(Dir, "trace_ip_drv"),
              P = Open({spawn, "trace_ip_drv " ++ integer_to_list(IpPort) ++ " 50 0"}, [eof]),
              Ctl = Control(P, $p, ""),
              {ok, S} = gen_tcp:connect({127, 0, 0, 1}, IpPort, [binary, {active, false}]),
              %% The driver accepts in ready_input; until then commands
              %% are dropped (not FILL_ALWAYS): wait until a probe gets
              %% through, then send the events.
              Probe = term_to_binary(probe),
              ok = until_connected(Cmd, P, S, Probe, 200),
              [true = Cmd(P, M) || M <- Msgs],
              Bytes = recv(S, Expected, <<>>),
              true = Close(P),
              ok = gen_tcp:close(S),
              ok = Unload("trace_ip_drv"),
              {ok, Ctl, Bytes}
      end, 30000).

until_connected(_Cmd, _P, _S, _Probe, 0) ->
    {error, not_accepted};
until_connected(Cmd, P, S, Probe, N) ->
    true = Cmd(P, Probe),
    Len = byte_size(Probe),
    case gen_tcp:recv(S, 5 + Len, 50) of
        {ok, <<0, Len:32, Probe:Len/binary>>} -> ok;
        {error, timeout} -> until_connected(Cmd, P, S, Probe, N - 1)
    end.

recv(_S, Need, Acc) when byte_size(Acc) >= Need ->
    Acc;
recv(S, Need, Acc) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, Data} -> recv(S, Need, <<Acc/binary, Data/binary>>);
        Error -> {Error, Acc}
    end.

%%--------------------------------------------------------------------
%% The compatibility report of each Debian driver says it will run.

check_reports_debian_drivers(_Config) ->
    Drivers = [{megaco, ?MEGACO}, {megaco, ?MEGACO_MT},
               {runtime_tools, "trace_file_drv"}, {runtime_tools, "trace_ip_drv"}],
    Checked = [begin
                   {ok, Report} = erl_driver_compat:check(filename:join(Dir, Name ++ ".so")),
                   #{verdict := Verdict, api_imports := Api, version := Version} = Report,
                   {Name, Verdict, [N || {N, unsupported} <- Api], Version}
               end
               || {App, Name} <- Drivers, is_list(Dir = driver_dir(App, Name))],
    ct:pal("~p", [Checked]),
    [{_, will_run, [], {3, _}} = C || C <- Checked],
    ok.

%% What the escript and the Mix task print and exit with: the report
%% text names the version, every import and the verdict; the status is 0
%% for a Debian driver, 2 for a file that is no driver (runtime_tools'
%% dyntrace NIF library: no driver_init) and for a missing file.
check_tool_output(_Config) ->
    case driver_dir(runtime_tools, "trace_file_drv") of
        {skip, _} = Skip ->
            Skip;
        Dir ->
            File = filename:join(Dir, "trace_file_drv.so"),
            Result = erl_driver_compat:check(File),
            Text = unicode:characters_to_list(erl_driver_compat_check:format_result(File, Result)),
            ct:pal("~ts", [Text]),
            0 = erl_driver_compat_check:status(Result),
            [true = string:find(Text, S) =/= nomatch
             || S <- ["interface version: 3.", "driver_set_timer", "supported",
                      "verdict:           will run"]],
            Nif = filename:join(Dir, "dyntrace.so"),
            NifResult = erl_driver_compat:check(Nif),
            {ok, #{verdict := {will_not_run, _}}} = NifResult,
            2 = erl_driver_compat_check:status(NifResult),
            Missing = erl_driver_compat:check(filename:join(Dir, "no_such_drv.so")),
            {error, {open_error, _}} = Missing,
            2 = erl_driver_compat_check:status(Missing),
            ok
    end.

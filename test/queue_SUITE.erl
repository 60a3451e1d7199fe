%% The port queue (lc_queue_drv): driver_enq/pushq/deq/sizeq/peekq/peekqv,
%% the binary variants and the ErlIOVec ones (from outputv), the binary
%% references the queue holds, the port data lock used from driver
%% threads, and flush-before-close: a port whose queue is not empty when
%% it is closed calls the driver's flush and ends only once the queue is
%% empty.
%%
%% Every case is differential: the same scenario runs against the native
%% port and the compat pseudo-port, and the native result must also be the
%% one measured on OTP 25 (the expected value in each case). Generated
%% operation sequences (PropEr) compare native and compat step by step.
%%
%% Every scenario leaves its ports closed: a native port left waiting for
%% its queue would make the VM's halt wait for it forever.
-module(queue_SUITE).
-include_lib("common_test/include/ct.hrl").

-export([all/0,
         groups/0,
         init_per_suite/1,
         end_per_suite/1]).
-export([enq_pushq_deq_sizeq/1,
         port_info_queue_size/1,
         peekqv_layout/1,
         queued_binaries_hold_references/1,
         zero_length_is_a_no_op/1,
         enqv_from_outputv/1,
         pushqv_with_skip/1,
         enqv_skipping_everything/1]).
-export([pdl_create_and_refc/1,
         thread_uses_queue_under_pdl/1,
         port_gone_gives_errors/1,
         queue_releases_binaries_when_port_ends/1]).
-export([close_with_empty_queue/1,
         port_close_waits_for_queue/1,
         close_message_waits_for_queue/1,
         exit_signal_waits_for_queue/1,
         owner_death_waits_for_queue/1,
         flush_dequeues_all/1,
         flush_dequeues_all_port_close/1,
         flush_fails_port/1,
         failure_while_closing/1,
         failure_eof_while_closing/1,
         failure_on_open_port_skips_flush/1,
         kill_skips_flush/1,
         partial_flush_then_control/1,
         emptied_by_other_port_stays_closing/1,
         emptied_by_thread_stays_closing/1,
         call_on_closing_port/1,
         output_while_closing_is_dropped/1]).
-export([generated_sequences/1]).

-define(DRV, "lc_queue_drv").

-define(OP_ENQ, 1).
-define(OP_PUSHQ, 2).
-define(OP_DEQ, 3).
-define(OP_SIZEQ, 4).
-define(OP_PEEKQ, 5).
-define(OP_PEEKQV, 6).
-define(OP_ALLOC_KEPT, 7).
-define(OP_ENQ_BIN, 8).
-define(OP_PUSHQ_BIN, 9).
-define(OP_KEPT_REFC, 10).
-define(OP_OUTV_MODE, 12).
-define(OP_LAST_RC, 13).
-define(OP_FLUSH_MODE, 14).
-define(OP_STATS, 15).
-define(OP_STATS_RESET, 16).
-define(OP_PDL_CREATE, 17).
-define(OP_THREAD_DEQ, 18).
-define(OP_THREAD_ENQ, 19).
-define(OP_PDL_REFC, 20).
-define(OP_EMPTY_ENQ, 21).
-define(OP_REGISTER, 22).
-define(OP_DEQ_OTHER, 23).
-define(OP_RELEASE, 24).
-define(OP_HOLD_PDL, 25).
-define(OP_STALE_SIZEQ, 26).
-define(OP_FAIL, 27).
-define(OP_OUTPUT, 29).
-define(OP_ENQ_BIN_OTHER, 30).
-define(OP_FAIL_EOF, 31).

-define(FLUSH_LEAVE, "0").
-define(FLUSH_DEQ_ALL, "1").
-define(FLUSH_DEQ_SOME, "2").
-define(FLUSH_FAIL, "3").
-define(FLUSH_THREAD, "4").

all() ->
    [{group, queue},
     {group, pdl},
     {group, flush},
     {group, generated}].

groups() ->
    [{queue, [], [enq_pushq_deq_sizeq,
                  port_info_queue_size,
                  peekqv_layout,
                  queued_binaries_hold_references,
                  zero_length_is_a_no_op,
                  enqv_from_outputv,
                  pushqv_with_skip,
                  enqv_skipping_everything]},
     {pdl, [], [pdl_create_and_refc,
                thread_uses_queue_under_pdl,
                port_gone_gives_errors,
                queue_releases_binaries_when_port_ends]},
     {flush, [], [close_with_empty_queue,
                  port_close_waits_for_queue,
                  close_message_waits_for_queue,
                  exit_signal_waits_for_queue,
                  owner_death_waits_for_queue,
                  flush_dequeues_all,
                  flush_dequeues_all_port_close,
                  flush_fails_port,
                  failure_while_closing,
                failure_eof_while_closing,
                  failure_on_open_port_skips_flush,
                  kill_skips_flush,
                  partial_flush_then_control,
                  emptied_by_other_port_stays_closing,
                  emptied_by_thread_stays_closing,
                  call_on_closing_port,
                  output_while_closing_is_dropped]},
     {generated, [], [generated_sequences]}].

init_per_suite(Config) ->
    [{holder, edc_diff:start_holder([?DRV])} | Config].

end_per_suite(Config) ->
    edc_diff:stop_holder(?config(holder, Config)).

%%--------------------------------------------------------------------
%% The queue
%%--------------------------------------------------------------------

%% port_info(P, queue_size) is the driver queue's size in bytes.
port_info_queue_size(_Config) ->
    edc_diff:expect("port_info queue_size",
            fun(B) ->
                    P = open(B),
                    Info = fun() -> edc_diff:call(B, port_info2, [P, queue_size]) end,
                    R = [Info(),
                         ctl(B, P, ?OP_ENQ, "abc"), Info(),
                         ctl(B, P, ?OP_PUSHQ, "xy"), Info(),
                         ctl(B, P, ?OP_DEQ, "4"), Info()],
                    _ = ctl(B, P, ?OP_DEQ, "1"),
                    close(B, P),
                    R
            end,
            [{queue_size, 0}, 0, {queue_size, 3}, 0, {queue_size, 5}, 1, {queue_size, 1}]).

enq_pushq_deq_sizeq(_Config) ->
    edc_diff:expect("enq/pushq/deq/sizeq/peekq",
            fun(B) ->
                    P = open(B),
                    R = [ctl(B, P, ?OP_ENQ, "abc"),
                         ctl(B, P, ?OP_PUSHQ, "xy"),
                         ctl(B, P, ?OP_SIZEQ, ""),
                         ctl(B, P, ?OP_PEEKQ, ""),
                         ctl(B, P, ?OP_DEQ, "1"),
                         ctl(B, P, ?OP_DEQ, "100"),
                         ctl(B, P, ?OP_DEQ, "0"),
                         ctl(B, P, ?OP_PEEKQ, ""),
                         ctl(B, P, ?OP_DEQ, "4"),
                         ctl(B, P, ?OP_PEEKQ, ""),
                         ctl(B, P, ?OP_SIZEQ, "")],
                    close(B, P),
                    R
            end,
            [0, 0, 5, {2, false, ["xy", "abc"]}, 4, -1, 4, {2, false, ["y", "abc"]},
             0, {0, true, []}, 0]).

%% driver_peekqv hands out the queue's own vector: no reserved first
%% slot, one binary per segment; NULL vectors when the queue is empty.
peekqv_layout(_Config) ->
    edc_diff:expect("peekqv",
            fun(B) ->
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_PUSHQ, "xy"),
                    R = [ctl(B, P, ?OP_PEEKQV, ""),
                         ctl(B, P, ?OP_DEQ, "1"),
                         ctl(B, P, ?OP_PEEKQV, ""),
                         ctl(B, P, ?OP_DEQ, "4"),
                         ctl(B, P, ?OP_PEEKQV, "")],
                    close(B, P),
                    R
            end,
            [{5, 2, 5, false, false, [{2, 0, 2, 1, other, "xy"}, {3, 0, 3, 1, other, "abc"}]},
             4,
             {4, 2, 4, false, false, [{1, 1, 2, 1, other, "y"}, {3, 0, 3, 1, other, "abc"}]},
             0,
             {0, 0, 0, true, true, []}]).

%% enq_bin/pushq_bin take a reference; deq releases a segment's once the
%% segment is consumed.
queued_binaries_hold_references(_Config) ->
    edc_diff:expect("queue references",
            fun(B) ->
                    P = open(B),
                    R = [ctl(B, P, ?OP_ALLOC_KEPT, "0123456789"),
                         ctl(B, P, ?OP_ENQ_BIN, "2 3"),
                         ctl(B, P, ?OP_PUSHQ_BIN, "0 1"),
                         ctl(B, P, ?OP_PEEKQV, ""),
                         ctl(B, P, ?OP_DEQ, "2"),
                         ctl(B, P, ?OP_KEPT_REFC, ""),
                         ctl(B, P, ?OP_DEQ, "2"),
                         ctl(B, P, ?OP_KEPT_REFC, "")],
                    close(B, P),
                    R
            end,
            [1, {0, 2}, {0, 3},
             {4, 2, 4, false, false, [{1, 0, 10, 3, kept, "0"}, {3, 2, 10, 3, kept, "234"}]},
             2, 2, 0, 1]).

zero_length_is_a_no_op(_Config) ->
    edc_diff:expect("zero-length enqueues",
            fun(B) ->
                    P = open(B),
                    R = [ctl(B, P, ?OP_ALLOC_KEPT, "0123"),
                         ctl(B, P, ?OP_EMPTY_ENQ, ""),
                         ctl(B, P, ?OP_KEPT_REFC, ""),
                         ctl(B, P, ?OP_PEEKQV, "")],
                    close(B, P),
                    R
            end,
            [1, {0, 0, 0, 0, 0}, 1, {0, 0, 0, true, true, []}]).

%% driver_enqv with the ErlIOVec of outputv: the empty reserved slot is
%% not queued; copied pieces share one binary, a large binary is a
%% segment of its own. (The reference count of a large binary from Erlang
%% differs by design, see bin_refc_SUITE: it is not compared.)
enqv_from_outputv(_Config) ->
    Big = binary:copy(<<"B">>, 100),
    edc_diff:expect("enqv from outputv",
            fun(B) ->
                    P = open(B),
                    ctl(B, P, ?OP_OUTV_MODE, "0 0"),
                    true = edc_diff:call(B, port_command, [P, [<<"ab">>, Big, "cd"]]),
                    R = [ctl(B, P, ?OP_LAST_RC, ""),
                         layout(ctl(B, P, ?OP_PEEKQV, ""))],
                    close(B, P),
                    R
            end,
            [{0, 104, 4},
             {104, 3, 104, false, false,
              [{2, 0, 4, 2, other, "ab"},
               {100, 0, 100, '_', other, binary_to_list(Big)},
               {2, 2, 4, 2, other, "cd"}]}]).

%% driver_pushqv with a skip: the skipped bytes are not queued, the rest
%% goes before what is queued, in order.
pushqv_with_skip(_Config) ->
    Big = binary:copy(<<"B">>, 100),
    edc_diff:expect("pushqv with skip",
            fun(B) ->
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "tail"),
                    ctl(B, P, ?OP_OUTV_MODE, "1 3"),
                    true = edc_diff:call(B, port_command, [P, [<<"XYZW">>, Big]]),
                    R = [ctl(B, P, ?OP_LAST_RC, ""),
                         layout(ctl(B, P, ?OP_PEEKQV, ""))],
                    close(B, P),
                    R
            end,
            [{0, 104, 3},
             {105, 3, 105, false, false,
              [{1, 3, 4, 1, other, "W"},
               {100, 0, 100, '_', other, binary_to_list(Big)},
               {4, 0, 4, 1, other, "tail"}]}]).

enqv_skipping_everything(_Config) ->
    edc_diff:expect("enqv skipping all",
            fun(B) ->
                    P = open(B),
                    ctl(B, P, ?OP_OUTV_MODE, "0 4"),
                    true = edc_diff:call(B, port_command, [P, <<"abcd">>]),
                    R = [ctl(B, P, ?OP_LAST_RC, ""), ctl(B, P, ?OP_SIZEQ, "")],
                    close(B, P),
                    R
            end,
            [{0, 4, 2}, 0]).

%%--------------------------------------------------------------------
%% The port data lock and driver threads
%%--------------------------------------------------------------------

%% A port has at most one PDL; lock/unlock and inc/dec count references.
pdl_create_and_refc(_Config) ->
    edc_diff:expect("driver_pdl_create",
            fun(B) ->
                    P = open(B),
                    R = [ctl(B, P, ?OP_PDL_CREATE, ""), ctl(B, P, ?OP_PDL_REFC, "")],
                    close(B, P),
                    R
            end,
            [{true, true, 1}, {1, 2, 1, 1}]).

%% A driver thread dequeues and enqueues under the PDL.
thread_uses_queue_under_pdl(_Config) ->
    edc_diff:expect("queue from a thread",
            fun(B) ->
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abcdef"),
                    R = [ctl(B, P, ?OP_THREAD_DEQ, "2"),
                         ctl(B, P, ?OP_THREAD_ENQ, "hello"),
                         ctl(B, P, ?OP_THREAD_DEQ, "100"),
                         ctl(B, P, ?OP_PEEKQ, "")],
                    close(B, P),
                    R
            end,
            [{4, 4}, {0, 9}, {-1, 9}, {2, false, ["cdef", "hello"]}]).

%% A PDL reference keeps the port's handle valid after the port is gone;
%% the queue functions then give their errors.
port_gone_gives_errors(_Config) ->
    edc_diff:expect("queue of a port that is gone",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = open(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    Held = ctl(B, P, ?OP_HOLD_PDL, ""),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_DEQ_ALL),
                    true = edc_diff:call(B, port_close, [P]),
                    Exit = await_exit(P),
                    R = [Held, Exit, ctl(B, O, ?OP_STALE_SIZEQ, "")],
                    close(B, O),
                    R
            end,
            [2, normal, {-1, -1, 2}]).

%% A port that ends with data queued releases the queue's references
%% (here: its flush fails the port).
queue_releases_binaries_when_port_ends(_Config) ->
    edc_diff:expect("queue references released at the end",
            fun(B) ->
                    process_flag(trap_exit, true),
                    A = open(B),
                    Q = open(B),
                    ctl(B, Q, ?OP_REGISTER, ""),
                    ctl(B, Q, ?OP_FLUSH_MODE, ?FLUSH_FAIL),
                    R1 = [ctl(B, A, ?OP_ALLOC_KEPT, "0123456789"),
                          ctl(B, A, ?OP_ENQ_BIN_OTHER, "0 4"),
                          ctl(B, Q, ?OP_SIZEQ, "")],
                    Q ! {self(), close},
                    R2 = [await_exit(Q), await(Q, closed), ctl(B, A, ?OP_KEPT_REFC, "")],
                    close(B, A),
                    R1 ++ R2
            end,
            [1, {0, 2}, 4, normal, closed, 1]).

%%--------------------------------------------------------------------
%% Flush before close
%%--------------------------------------------------------------------

%% With an empty queue, flush is not called; stop's output arrives after
%% the exit signal and before {Port, closed}.
close_with_empty_queue(_Config) ->
    edc_diff:expect("close with an empty queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_DEQ, "3"),
                    P ! {self(), close},
                    R = [await_exit(P), await_data(P), await(P, closed), stats(B, O)],
                    close(B, O),
                    R
            end,
            [normal, <<"stop">>, closed, {0, 0, 0, 1, 0, 0}]).

%% port_close/1 returns at once; the links see the exit now; flush runs
%% (what it outputs is dropped); the port is unreachable for port_command
%% and port_close but still answers port_control and port_info; the
%% control that empties the queue ends it.
port_close_waits_for_queue(_Config) ->
    edc_diff:expect("port_close waits for the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    Closed = edc_diff:call(B, port_close, [P]),
                    R = [Closed,
                         await_exit(P),
                         catch_error(fun() -> edc_diff:call(B, port_command, [P, "x"]) end),
                         catch_error(fun() -> edc_diff:call(B, port_close, [P]) end),
                         catch_error(fun() -> edc_diff:call(B, port_connect, [P, O]) end),
                         edc_diff:call(B, port_info2, [P, connected]),
                         ctl(B, P, ?OP_SIZEQ, ""),
                         stats(B, O),
                         ctl(B, P, ?OP_DEQ, "3"),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O),
                         mailbox()],
                    close(B, O),
                    R
            end,
            [true, normal, badarg, badarg, badarg, {connected, self}, 3,
             {1, 3, 0, 0, 0, 0}, 0, undefined, {1, 3, 0, 1, 0, 0}, []]).

%% {Owner, close}: {Port, closed} comes when the queue has emptied;
%% meanwhile commands, closes and exit signals are ignored.
close_message_waits_for_queue(_Config) ->
    edc_diff:expect("close message waits for the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    P ! {self(), close},
                    Exit = await_exit(P),
                    P ! {self(), {command, "more"}},
                    P ! {self(), close},
                    exit(P, foo),
                    R = [Exit,
                         ctl(B, P, ?OP_SIZEQ, ""),
                         mailbox(),
                         ctl(B, P, ?OP_DEQ, "3"),
                         await(P, closed),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O),
                         mailbox()],
                    close(B, O),
                    R
            end,
            [normal, 3, [], 0, closed, undefined, {1, 3, 0, 1, 0, 0}, []]).

exit_signal_waits_for_queue(_Config) ->
    edc_diff:expect("exit signal waits for the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    sync(P),
                    exit(P, foo),
                    R = [await_exit(P),
                         stats(B, O),
                         ctl(B, P, ?OP_DEQ, "3"),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O),
                         mailbox()],
                    close(B, O),
                    R
            end,
            [foo, {1, 3, 0, 0, 0, 0}, 0, undefined, {1, 3, 0, 1, 0, 0}, []]).

%% The owner's death closes the port: the close waits for the queue.
owner_death_waits_for_queue(_Config) ->
    edc_diff:expect("owner death waits for the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    Self = self(),
                    #{open_port := RawOpen} = edc_diff:backend(maps:get(kind, B)),
                    Owner = spawn(fun() ->
                                          P = RawOpen({spawn, ?DRV}, [binary]),
                                          ctl(B, P, ?OP_ENQ, "abc"),
                                          sync(P),
                                          Self ! {port, P},
                                          receive die -> exit(bye) end
                                  end),
                    P = receive {port, Port} -> Port end,
                    link(P),
                    Owner ! die,
                    R = [await_exit(P),
                         ctl(B, P, ?OP_SIZEQ, ""),
                         ctl(B, P, ?OP_DEQ, "3"),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O)],
                    close(B, O),
                    R
            end,
            [bye, 3, 0, undefined, {1, 3, 0, 1, 0, 0}]).

%% A flush that empties the queue ends the port right away; stop's output
%% is dropped (the port is closing).
flush_dequeues_all(_Config) ->
    edc_diff:expect("flush empties the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_DEQ_ALL),
                    P ! {self(), close},
                    R = [await_exit(P), await(P, closed),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O), mailbox()],
                    close(B, O),
                    R
            end,
            [normal, closed, undefined, {1, 3, 0, 1, 0, 0}, []]).

flush_dequeues_all_port_close(_Config) ->
    edc_diff:expect("flush empties the queue (port_close)",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_DEQ_ALL),
                    Closed = edc_diff:call(B, port_close, [P]),
                    R = [Closed, await_exit(P),
                         edc_diff:call(B, port_info2, [P, connected]),
                         stats(B, O), mailbox()],
                    close(B, O),
                    R
            end,
            [true, normal, undefined, {1, 3, 0, 1, 0, 0}, []]).

%% driver_failure in flush ends the port now: stop sees the queue.
flush_fails_port(_Config) ->
    edc_diff:expect("driver_failure in flush",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_FAIL),
                    P ! {self(), close},
                    R = [await_exit(P), await(P, closed), stats(B, O), mailbox()],
                    close(B, O),
                    R
            end,
            [normal, closed, {1, 3, 0, 1, 3, 0}, []]).

%% driver_failure_eof on a port whose close waits for its queue ends it
%% now, also with the `eof' option (no {Port, eof} then).
failure_eof_while_closing(_Config) ->
    edc_diff:expect("driver_failure_eof while closing",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = edc_diff:call(B, open_port, [{spawn, ?DRV}, [binary, eof]]),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    P ! {self(), close},
                    R = [await_exit(P), ctl(B, P, ?OP_FAIL_EOF, ""), await(P, closed),
                         stats(B, O), mailbox()],
                    close(B, O),
                    R
            end,
            [normal, 0, closed, {1, 3, 0, 1, 3, 0}, []]).

failure_while_closing(_Config) ->
    edc_diff:expect("driver_failure while closing",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    P ! {self(), close},
                    R = [await_exit(P), ctl(B, P, ?OP_FAIL, ""), await(P, closed),
                         stats(B, O), mailbox()],
                    close(B, O),
                    R
            end,
            [normal, failed, closed, {1, 3, 0, 1, 3, 0}, []]).

%% A driver failure on an open port does not flush: the queue is
%% forgotten before stop, whose output arrives.
failure_on_open_port_skips_flush(_Config) ->
    edc_diff:expect("driver_failure with data queued",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    R = [ctl(B, P, ?OP_FAIL, ""), await_exit(P), await_data(P), stats(B, O)],
                    close(B, O),
                    R
            end,
            [failed, 5, <<"stop">>, {0, 0, 0, 1, 0, 0}]).

kill_skips_flush(_Config) ->
    edc_diff:expect("kill with data queued",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    exit(P, kill),
                    R = [await_exit(P), await_data(P), stats(B, O)],
                    close(B, O),
                    R
            end,
            [killed, <<"stop">>, {0, 0, 0, 1, 3, 0}]).

partial_flush_then_control(_Config) ->
    edc_diff:expect("flush leaves part of the queue",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_DEQ_SOME),
                    P ! {self(), close},
                    R = [await_exit(P), ctl(B, P, ?OP_PEEKQ, ""), stats(B, O),
                         ctl(B, P, ?OP_ENQ, "zz"), ctl(B, P, ?OP_DEQ, "1"),
                         edc_diff:call(B, port_info2, [P, connected]),
                         ctl(B, P, ?OP_DEQ, "2"), await(P, closed), stats(B, O)],
                    close(B, O),
                    R
            end,
            [normal, {1, false, ["c"]}, {1, 3, 0, 0, 0, 0}, 0, 2, {connected, self},
             0, closed, {1, 3, 0, 1, 0, 0}]).

%% A queue emptied from another port's callback does not end the port,
%% nor do messages and exit signals it ignores; a port BIF does, even one
%% that fails (natively it is a task of the port).
emptied_by_other_port_stays_closing(_Config) ->
    edc_diff:expect("queue emptied by another port",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_REGISTER, ""),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    P ! {self(), close},
                    R1 = [await_exit(P), ctl(B, O, ?OP_DEQ_OTHER, "3"), mailbox(), stats(B, O)],
                    P ! {self(), {command, "x"}},
                    P ! {self(), close},
                    exit(P, foo),
                    R2 = [stats(B, O),
                          catch_error(fun() -> edc_diff:call(B, port_command, [P, "x"]) end),
                          await(P, closed),
                          stats(B, O),
                          edc_diff:call(B, port_info2, [P, connected])],
                    close(B, O),
                    R1 ++ R2
            end,
            [normal, 0, [], {1, 3, 0, 0, 0, 0},
             {1, 3, 0, 0, 0, 0}, badarg, closed, {1, 3, 0, 1, 0, 0}, undefined]).

%% Nor does a queue emptied by a driver thread; port_info then answers
%% and ends the port.
emptied_by_thread_stays_closing(_Config) ->
    edc_diff:expect("queue emptied by a thread",
            fun(B) ->
                    process_flag(trap_exit, true),
                    O = observer(B),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    ctl(B, P, ?OP_FLUSH_MODE, ?FLUSH_THREAD),
                    P ! {self(), close},
                    R = [await_exit(P),
                         ctl(B, O, ?OP_RELEASE, ""),
                         mailbox(),
                         stats(B, O),
                         edc_diff:call(B, port_info2, [P, connected]),
                         await(P, closed),
                         stats(B, O),
                         edc_diff:call(B, port_info2, [P, connected])],
                    close(B, O),
                    R
            end,
            [normal, {0, 0}, [], {1, 3, 0, 0, 0, 0}, {connected, self}, closed,
             {1, 3, 0, 1, 0, 0}, undefined]).

call_on_closing_port(_Config) ->
    edc_diff:expect("port_call on a closing port",
            fun(B) ->
                    process_flag(trap_exit, true),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    P ! {self(), close},
                    [await_exit(P),
                     edc_diff:call(B, port_call, [P, 0, hello]),
                     ctl(B, P, ?OP_SIZEQ, ""),
                     edc_diff:call(B, port_call, [P, 1, hello]),
                     await(P, closed),
                     edc_diff:call(B, port_info2, [P, connected])]
            end,
            [normal, hello, 3, hello, closed, undefined]).

output_while_closing_is_dropped(_Config) ->
    edc_diff:expect("output while closing",
            fun(B) ->
                    process_flag(trap_exit, true),
                    P = open(B),
                    ctl(B, P, ?OP_ENQ, "abc"),
                    Closed = edc_diff:call(B, port_close, [P]),
                    [Closed, await_exit(P),
                     ctl(B, P, ?OP_OUTPUT, "hi"),
                     ctl(B, P, ?OP_DEQ, "3"),
                     mailbox()]
            end,
            [true, normal, 0, 0, []]).

%%--------------------------------------------------------------------
%% Generated operation sequences
%%--------------------------------------------------------------------

%% Random sequences of queue operations give the same replies natively
%% and through the compat layer, step by step.
generated_sequences(_Config) ->
    Prop = proper:forall(
             ops(),
             fun(Ops) ->
                     Scenario = fun(B) -> run_ops(B, Ops) end,
                     Native = edc_diff:run(native, Scenario),
                     Compat = edc_diff:run(compat, Scenario),
                     Native =:= Compat orelse
                         ct:pal("ops ~p~n native ~p~n compat ~p", [Ops, Native, Compat]),
                     Native =:= Compat
             end),
    true = proper:quickcheck(Prop, [{numtests, 150}, {to_file, user}, long_result]).

ops() ->
    proper_types:list(op()).

op() ->
    Bytes = proper_types:non_empty(proper_types:list(proper_types:range($a, $z))),
    Small = proper_types:range(0, 12),
    proper_types:oneof(
      [{enq, Bytes},
       {pushq, Bytes},
       {deq, Small},
       {enq_bin, Small, Small},
       {pushq_bin, Small, Small},
       {outputv, proper_types:oneof([enq, push]), Small, iolist()},
       peekq,
       peekqv,
       sizeq,
       refc]).

iolist() ->
    Piece = proper_types:oneof(
              [proper_types:binary(),
               proper_types:list(proper_types:range($A, $Z)),
               proper_types:oneof([binary:copy(<<"L">>, 65),
                                   binary:copy(<<"M">>, 300)])]),
    proper_types:list(Piece).

run_ops(B, Ops) ->
    P = open(B),
    ctl(B, P, ?OP_ALLOC_KEPT, "ABCDEFGHIJKL"),
    R = [run_op(B, P, Op) || Op <- Ops],
    close(B, P),
    R.

run_op(B, P, {enq, Bytes}) -> ctl(B, P, ?OP_ENQ, Bytes);
run_op(B, P, {pushq, Bytes}) -> ctl(B, P, ?OP_PUSHQ, Bytes);
run_op(B, P, {deq, N}) -> ctl(B, P, ?OP_DEQ, integer_to_list(N));
run_op(B, P, {enq_bin, Off, Len}) -> bin_op(B, P, ?OP_ENQ_BIN, Off, Len);
run_op(B, P, {pushq_bin, Off, Len}) -> bin_op(B, P, ?OP_PUSHQ_BIN, Off, Len);
run_op(B, P, {outputv, Mode, Skip, IoList}) ->
    ModeArg = case Mode of enq -> "0"; push -> "1" end,
    ctl(B, P, ?OP_OUTV_MODE, ModeArg ++ " " ++ integer_to_list(Skip)),
    true = edc_diff:call(B, port_command, [P, IoList]),
    ctl(B, P, ?OP_LAST_RC, "");
run_op(B, P, peekq) -> ctl(B, P, ?OP_PEEKQ, "");
run_op(B, P, peekqv) -> layout(ctl(B, P, ?OP_PEEKQV, ""));
run_op(B, P, sizeq) -> ctl(B, P, ?OP_SIZEQ, "");
run_op(B, P, refc) -> ctl(B, P, ?OP_KEPT_REFC, "").

%% Only ranges inside the 12-byte binary (the driver API does not check).
bin_op(B, P, Op, Off, Len) when Off + Len =< 12 ->
    ctl(B, P, Op, integer_to_list(Off) ++ " " ++ integer_to_list(Len));
bin_op(_B, _P, _Op, _Off, _Len) ->
    skipped.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

open(#{open_port := Open}) ->
    Open({spawn, ?DRV}, [binary]).

%% A second port whose controls read the driver's statistics; the
%% statistics start from zero.
observer(B) ->
    O = open(B),
    ok = ctl(B, O, ?OP_STATS_RESET, ""),
    O.

stats(B, O) ->
    ctl(B, O, ?OP_STATS, "").

%% Closes a port whose queue is empty (so that it ends at once).
close(B, P) ->
    ctl(B, P, ?OP_DEQ, integer_to_list(max(0, ctl(B, P, ?OP_SIZEQ, "")))),
    true = edc_diff:call(B, port_close, [P]),
    ok.

%% A control reply parsed as an Erlang term (errors as their reason).
ctl(#{port_control := Ctl}, P, Op, Arg) ->
    try Ctl(P, Op, Arg) of
        Text when is_list(Text) -> edc_diff:parse_term(Text);
        Other -> {not_a_list, Other}
    catch
        error:Reason -> {error, Reason}
    end.

%% Waits until the port has handled a message (compat: its process runs
%% and traps exits, so that an exit signal sent next is not taken for the
%% death of a process that has not started yet).
sync(P) ->
    P ! {self(), {connect, self()}},
    receive {P, connected} -> ok after 5000 -> no_sync end.

catch_error(F) ->
    try F() catch error:Reason -> Reason end.

await_exit(P) ->
    receive {'EXIT', P, Reason} -> Reason after 5000 -> no_exit end.

await(P, What) ->
    receive {P, What} -> What after 5000 -> {no, What} end.

await_data(P) ->
    receive {P, {data, D}} -> D after 5000 -> no_data end.

%% The messages already in the mailbox (a marker sent to ourselves comes
%% after them).
mailbox() ->
    Ref = make_ref(),
    self() ! Ref,
    mailbox(Ref).

mailbox(Ref) ->
    receive
        Ref -> [];
        M -> [M | mailbox(Ref)]
    end.

%% A peekqv reply with the reference count of segments in binaries larger
%% than 64 bytes left out: such a binary comes from Erlang, where natively
%% the sender's reference counts too (see bin_refc_SUITE).
layout({Ret, Vsize, Size, IovNull, BinvNull, Segs}) ->
    {Ret, Vsize, Size, IovNull, BinvNull,
     [case BinSize > 64 of
          true -> {Len, Off, BinSize, '_', Kept, Bytes};
          false -> Seg
      end || {Len, Off, BinSize, _Refc, Kept, Bytes} = Seg <- Segs]};
layout(Other) ->
    Other.

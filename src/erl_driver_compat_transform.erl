%% @doc A parse transform that moves an application from `erl_ddll' and
%% the port BIFs to erl_driver_compat without editing its source.
%%
%% Compile with `{parse_transform, erl_driver_compat_transform}' (in
%% `erl_opts' of rebar.config for a whole application, or
%% `-compile({parse_transform, erl_driver_compat_transform}).' in one
%% module). Then, in the module's code:
%%
%% <ul>
%% <li>calls of `erl_ddll:load/2', `load_driver/2', `unload/1' and
%%     `unload_driver/1' call the functions of the same name of
%%     `erl_driver_compat';</li>
%% <li>calls of `erlang:open_port/2', `port_command/2,3',
%%     `port_control/3', `port_call/3', `port_close/1', `port_connect/2',
%%     `port_info/1,2' and `is_port/1' call `erl_driver_compat', whether
%%     written as remote calls (`erlang:port_command(P, D)'), as local
%%     calls of the auto-imported BIFs (`port_command(P, D)'), as
%%     `fun erlang:port_close/1', or as `apply(erlang, F, [A...])' /
%%     `erlang:apply/3' with literal module, function and argument
%%     list;</li>
%% <li>`is_port(E)' in a guard (where a remote call is not allowed) is
%%     decided exactly, by moving the test into the clause's body: see
%%     below.</li>
%% </ul>
%%
%% Everything else, native ports included, behaves as before:
%% `erl_driver_compat' hands native ports and names that are not drivers
%% loaded through it to the `erlang' BIFs.
%%
%% == is_port/1 in guards ==
%%
%% A pseudo-port is a pid, and no guard test tells it from other pids. In
%% the clauses of a function, a fun, a `case' or an `if', a guard that
%% mentions `is_port/1' is replaced by a weaker guard (`is_port(E)' becomes
%% `is_port(E) orelse is_pid(E)'; any other guard test that mentions
%% `is_port' becomes `true'), and the clause's body first evaluates the
%% original guard exactly, with `erl_driver_compat:is_port/1' (each guard
%% of a guard sequence in a `try', so that an exception makes it false as
%% in a guard). When the exact guard is false, matching goes on with the
%% following clauses, as it would have. The following clauses are put in
%% a fun for that.
%%
%% == Limits ==
%%
%% <ul>
%% <li>In `receive' and `catch' clauses a clause cannot be undone once
%%     chosen: there `is_port(E)' becomes `is_port(E) orelse is_pid(E)',
%%     true for every pid (and `not is_port(E)' false for every pid).</li>
%% <li>A function whose clauses were rewritten raises `function_clause'
%%     from its own body when no clause matches (the arguments are the
%%     same, the stack trace has one more frame); a `case' or `if' raises
%%     `case_clause' / `if_clause' as before.</li>
%% <li>Variables bound in the body of such a clause are not exported from
%%     the `case' or `if' (they are bound inside a nested `case'); code
%%     using them after the `case' no longer compiles (an error, not a
%%     silent change).</li>
%% <li>Only literal calls are seen: `apply(M, F, Args)' with computed
%%     `M', `F' or `Args', `fun M:F/A' with variables, `erlang:ports/0' and
%%     calls made by other modules (libraries) that are not compiled with
%%     the transform still reach the `erlang' BIFs. Code that tests a
%%     port's type by other means (`is_pid/1', `erlang:port_to_list/1',
%%     matching `#Port<...>' in `io_lib:format' output) sees a pid.</li>
%% <li>A module that defines its own function of the same name and arity
%%     as an auto-imported BIF (with `-compile({no_auto_import, ...})'),
%%     or imports one from another module, keeps calling it. (Functions
%%     imported from `erl_ddll' or `erlang' with `-import' are
%%     redirected.)</li>
%% </ul>
-module(erl_driver_compat_transform).

-export([parse_transform/2]).

-define(TARGET, erl_driver_compat).

%% @doc The parse transform: rewrites the forms of one module as the module
%% doc says. `Options' (the compiler's) are not used.
-spec parse_transform([erl_parse:abstract_form()], [compile:option()]) ->
          [erl_parse:abstract_form()].
parse_transform(Forms, _Options) ->
    case lists:keymember(?MODULE, 3, Forms) of
        true ->
            %% Already transformed (the transform given twice, e.g. in
            %% erl_opts and in a -compile attribute): once is enough.
            Forms;
        false ->
            transform(Forms)
    end.

transform(Forms) ->
    Local = local_functions(Forms),
    Module = hd([M || {attribute, _, module, M} <- Forms] ++ [undefined]),
    Env = #{local => Local, imports => imports(Forms), counter => counter(),
            module => Module},
    try
        lists:append([mark(form(F, Env)) || F <- Forms])
    after
        erase(counter_key(Env))
    end.

%% -erl_driver_compat_transform(done). after -module: the mark of a
%% transformed module.
mark({attribute, Anno, module, _} = Module) ->
    [Module, {attribute, gen(Anno), ?MODULE, done}];
mark(Form) ->
    [Form].

%%--------------------------------------------------------------------
%% Which calls are redirected
%%--------------------------------------------------------------------

redirected(erl_ddll, load, 2) -> true;
redirected(erl_ddll, load_driver, 2) -> true;
redirected(erl_ddll, unload, 1) -> true;
redirected(erl_ddll, unload_driver, 1) -> true;
redirected(erlang, open_port, 2) -> true;
redirected(erlang, port_command, 2) -> true;
redirected(erlang, port_command, 3) -> true;
redirected(erlang, port_control, 3) -> true;
redirected(erlang, port_call, 3) -> true;
redirected(erlang, port_close, 1) -> true;
redirected(erlang, port_connect, 2) -> true;
redirected(erlang, port_info, 1) -> true;
redirected(erlang, port_info, 2) -> true;
redirected(erlang, is_port, 1) -> true;
redirected(_, _, _) -> false.

%% A local call F(...) means M:F(...) when F/A is imported from M
%% (`-import(erl_ddll, [load_driver/2])'), or is an auto-imported BIF that
%% the module neither defines nor imports (M = erlang).
local_bif(F, A, #{local := Local, imports := Imports}) ->
    case Imports of
        #{{F, A} := M} ->
            redirected(M, F, A);
        #{} ->
            erl_internal:bif(F, A) andalso redirected(erlang, F, A)
                andalso not sets:is_element({F, A}, Local)
    end.

%% {F, A} => Module for the module's -import attributes.
imports(Forms) ->
    maps:from_list([{FA, M} || {attribute, _, import, {M, Fs}} <- Forms, FA <- Fs]).

%% Functions defined, imported or excluded from auto-import in the module.
local_functions(Forms) ->
    sets:from_list(
      lists:append([case F of
                        {function, _, Name, Arity, _} -> [{Name, Arity}];
                        {attribute, _, import, {_, Fs}} -> Fs;
                        {attribute, _, compile, Opts} -> no_auto_import(Opts);
                        _ -> []
                    end || F <- Forms])).

no_auto_import(Opts) when is_list(Opts) ->
    lists:append([Fs || {no_auto_import, Fs} <- Opts, is_list(Fs)]);
no_auto_import(Opt) ->
    no_auto_import([Opt]).

%%--------------------------------------------------------------------
%% Fresh variables
%%--------------------------------------------------------------------

counter() -> make_ref().

counter_key(#{counter := Ref}) -> {?MODULE, Ref}.

fresh(Anno, Env) ->
    Key = counter_key(Env),
    N = case get(Key) of
            undefined -> 1;
            M -> M + 1
        end,
    put(Key, N),
    {var, Anno, list_to_atom("Edc@" ++ integer_to_list(N))}.

gen(Anno) ->
    erl_anno:set_generated(true, Anno).

%%--------------------------------------------------------------------
%% The walk
%%--------------------------------------------------------------------

form({function, Anno, Name, Arity, Clauses}, Env) ->
    Clauses1 = [clause(C, Env) || C <- Clauses],
    case lists:any(fun has_port_guard/1, Clauses1) of
        false ->
            {function, Anno, Name, Arity, Clauses1};
        true ->
            {function, Anno, Name, Arity, [function_as_case(Anno, Arity, Clauses1, Name, Env)]}
    end;
form(Form, _Env) ->
    Form.

%% f(P1, ..., Pn) when G -> B; ... becomes
%% f(V1, ..., Vn) -> case {V1, ..., Vn} of {P1, ..., Pn} when G -> B; ...;
%%                   _ -> erlang:error(function_clause, [V1, ..., Vn]) end
function_as_case(Anno, Arity, Clauses, Name, Env) ->
    G = gen(Anno),
    Vars = [fresh(G, Env) || _ <- lists:seq(1, Arity)],
    NoMatch = case Name of
                  undefined ->
                      error_call(G, [{atom, G, function_clause}, list(Vars, G)]);
                  _ ->
                      function_clause(G, Name, Vars, Env)
              end,
    CaseClauses = [{clause, A, [{tuple, A, Ps}], Gs, B} || {clause, A, Ps, Gs, B} <- Clauses]
        ++ [{clause, G, [{var, G, '_'}], [], [NoMatch]}],
    {clause, Anno, Vars, [], [case_expr(G, {tuple, G, Vars}, CaseClauses, Env)]}.

%% The function_clause error of function Name called with Vars, with the
%% stack trace it has natively: the function and its arguments on top of
%% the caller's frames (raised from the fun of the following clauses,
%% called last: the function's own frame is gone). Only on this path:
%%
%% try erlang:error(edc_no_clause)
%% catch error:edc_no_clause:St ->
%%     erlang:raise(error, function_clause, [{Module, Name, Vars, Loc} | tl(St)])
%% end
function_clause(G, Name, Vars, #{module := Module} = Env) ->
    St = fresh(G, Env),
    Loc = list([{tuple, G, [{atom, G, line}, {integer, G, erl_anno:line(G)}]}], G),
    Frame = {tuple, G, [{atom, G, Module}, {atom, G, Name}, list(Vars, G), Loc]},
    Raise = {call, G, {remote, G, {atom, G, erlang}, {atom, G, raise}},
             [{atom, G, error}, {atom, G, function_clause},
              {cons, G, Frame, {call, G, {atom, G, tl}, [St]}}]},
    {'try', G, [error_call(G, [{atom, G, edc_no_clause}])], [],
     [{clause, G, [{tuple, G, [{atom, G, error}, {atom, G, edc_no_clause}, St]}], [], [Raise]}],
     []}.

list([], Anno) -> {nil, Anno};
list([H | T], Anno) -> {cons, Anno, H, list(T, Anno)}.

%% A clause: patterns as they are (no calls), guards kept for the clause
%% list that owns the clause, bodies walked.
clause({clause, Anno, Pats, Guards, Body}, Env) ->
    {clause, Anno, Pats, Guards, exprs(Body, Env)}.

exprs(Es, Env) -> [expr(E, Env) || E <- Es].

expr({call, Anno, {remote, RA, {atom, MA, M}, {atom, FA, F}} = Fun, Args}, Env) ->
    Args1 = exprs(Args, Env),
    case redirected(M, F, length(Args)) of
        true -> {call, Anno, {remote, RA, {atom, MA, ?TARGET}, {atom, FA, F}}, Args1};
        false -> apply_call(Anno, Fun, Args1)
    end;
expr({call, Anno, {atom, FA, F} = Fun, Args}, Env) ->
    Args1 = exprs(Args, Env),
    case local_bif(F, length(Args), Env) of
        true -> {call, Anno, {remote, FA, {atom, FA, ?TARGET}, {atom, FA, F}}, Args1};
        false when F =:= apply -> local_apply(Anno, Fun, Args1, Env);
        false -> {call, Anno, Fun, Args1}
    end;
expr({'fun', Anno, {function, {atom, MA, M}, {atom, FA, F}, {integer, _, A} = Ar}} = Fun,
     _Env) ->
    case redirected(M, F, A) of
        true -> {'fun', Anno, {function, {atom, MA, ?TARGET}, {atom, FA, F}, Ar}};
        false -> Fun
    end;
expr({'case', Anno, E, Clauses}, Env) ->
    case_expr(Anno, expr(E, Env), [clause(C, Env) || C <- Clauses], Env);
expr({'if', Anno, Clauses}, Env) ->
    if_expr(Anno, [clause(C, Env) || C <- Clauses], Env);
expr({'fun', Anno, {clauses, Clauses}}, Env) ->
    {'fun', Anno, {clauses, fun_clauses(Anno, [clause(C, Env) || C <- Clauses], Env)}};
expr({named_fun, Anno, Name, Clauses}, Env) ->
    {named_fun, Anno, Name, fun_clauses(Anno, [clause(C, Env) || C <- Clauses], Env)};
expr({'receive', Anno, Clauses}, Env) ->
    {'receive', Anno, [relaxed_clause(clause(C, Env)) || C <- Clauses]};
expr({'receive', Anno, Clauses, Timeout, After}, Env) ->
    {'receive', Anno, [relaxed_clause(clause(C, Env)) || C <- Clauses],
     expr(Timeout, Env), exprs(After, Env)};
expr({'try', Anno, Body, OfClauses, CatchClauses, After}, Env) ->
    Of = case OfClauses of
             [] -> [];
             _ -> of_clauses(Anno, [clause(C, Env) || C <- OfClauses], Env)
         end,
    {'try', Anno, exprs(Body, Env), Of,
     [relaxed_clause(clause(C, Env)) || C <- CatchClauses], exprs(After, Env)};
expr({Comprehension, Anno, Template, Qualifiers}, Env)
  when Comprehension =:= lc; Comprehension =:= bc ->
    %% Filters may be guards; generators' patterns have no calls.
    {Comprehension, Anno, expr(Template, Env),
     [case Q of
          {generate, A, P, E} -> {generate, A, P, expr(E, Env)};
          {b_generate, A, P, E} -> {b_generate, A, P, expr(E, Env)};
          Filter -> expr(Filter, Env)
      end || Q <- Qualifiers]};
expr({clause, _, _, _, _} = C, Env) ->
    clause(C, Env);
expr(T, Env) when is_tuple(T) ->
    list_to_tuple([expr(E, Env) || E <- tuple_to_list(T)]);
expr(L, Env) when is_list(L) ->
    [expr(E, Env) || E <- L];
expr(Leaf, _Env) ->
    Leaf.

%% erlang:apply(erlang, F, [A1, ..., An]) with everything literal.
apply_call(Anno, {remote, _, {atom, _, erlang}, {atom, _, apply}} = Fun,
           [{atom, MA, M}, {atom, FA, F}, ArgList] = Args) ->
    case literal_length(ArgList) of
        {ok, N} ->
            case redirected(M, F, N) of
                true -> {call, Anno, Fun, [{atom, MA, ?TARGET}, {atom, FA, F}, ArgList]};
                false -> {call, Anno, Fun, Args}
            end;
        error ->
            {call, Anno, Fun, Args}
    end;
apply_call(Anno, Fun, Args) ->
    {call, Anno, Fun, Args}.

local_apply(Anno, {atom, A, apply} = Fun, Args, #{local := Local}) ->
    case length(Args) =:= 3 andalso not sets:is_element({apply, 3}, Local) of
        true -> apply_call(Anno, {remote, A, {atom, A, erlang}, Fun}, Args);
        false -> {call, Anno, Fun, Args}
    end.

literal_length({nil, _}) -> {ok, 0};
literal_length({cons, _, _, T}) ->
    case literal_length(T) of
        {ok, N} -> {ok, N + 1};
        error -> error
    end;
literal_length(_) -> error.

%%--------------------------------------------------------------------
%% is_port/1 in guards
%%--------------------------------------------------------------------

has_port_guard({clause, _, _, Guards, _}) ->
    mentions_is_port(Guards).

mentions_is_port({call, _, {atom, _, is_port}, [_]}) -> true;
mentions_is_port({call, _, {remote, _, {atom, _, erlang}, {atom, _, is_port}}, [_]}) -> true;
mentions_is_port(T) when is_tuple(T) -> mentions_is_port(tuple_to_list(T));
mentions_is_port(L) when is_list(L) -> lists:any(fun mentions_is_port/1, L);
mentions_is_port(_) -> false.

%% case E of Clauses end, with a clause whose guard mentions is_port/1
%% split: the weaker guard selects it, its body checks the exact guard and
%% goes on with the following clauses when it is false. The following
%% clauses are a case in a fun (itself split again if one of them also has
%% such a guard), also called for a value that no earlier clause takes:
%%
%% begin
%%     V = E,
%%     Rest = fun(W) -> case W of Following end end,
%%     case V of
%%         Before...;
%%         Pat = V when Weaker -> case Exact of true -> Body; false -> Rest(V) end;
%%         _ -> Rest(V)
%%     end
%% end
case_expr(Anno, E, Clauses, Env) ->
    case lists:splitwith(fun(C) -> not has_port_guard(C) end, Clauses) of
        {_, []} ->
            {'case', Anno, E, Clauses};
        {Before, [{clause, CA, [Pat], Guards, Body} | Following]} ->
            G = gen(Anno),
            V = fresh(G, Env),
            W = fresh(G, Env),
            Rest = fresh(G, Env),
            RestBody = case Following of
                           [] -> error_call(G, [{tuple, G, [{atom, G, case_clause}, W]}]);
                           _ -> case_expr(G, W, Following, Env)
                       end,
            RestFun = {'fun', G, {clauses, [{clause, G, [W], [], [RestBody]}]}},
            GoOn = {call, G, Rest, [V]},
            Split = {clause, CA, [{match, CA, Pat, V}], relaxed(Guards),
                     [checked(G, Guards, Body, GoOn)]},
            {block, G, [{match, G, V, E},
                        {match, G, Rest, RestFun},
                        {'case', Anno, V, Before ++ [Split, {clause, G, [{var, G, '_'}], [], [GoOn]}]}]}
    end.

%% Function and fun clauses: Clauses of arity N as a case on a tuple.
fun_clauses(Anno, [{clause, _, Pats, _, _} | _] = Clauses, Env) ->
    case lists:any(fun has_port_guard/1, Clauses) of
        false -> Clauses;
        true -> [function_as_case(Anno, length(Pats), Clauses, undefined, Env)]
    end;
fun_clauses(_Anno, Clauses, _Env) ->
    Clauses.

%% try ... of Clauses: as a case on the value.
of_clauses(Anno, Clauses, Env) ->
    case lists:any(fun has_port_guard/1, Clauses) of
        false ->
            Clauses;
        true ->
            G = gen(Anno),
            V = fresh(G, Env),
            [{clause, G, [V], [],
              [case_expr(G, V, Clauses ++ [{clause, G, [{var, G, '_'}], [],
                                             [{call, G, {remote, G, {atom, G, erlang},
                                                         {atom, G, error}},
                                               [{tuple, G, [{atom, G, try_clause}, V]}]}]}],
                         Env)]}]
    end.

%% if G1 -> B1; ... end: the same with `if' for the following clauses.
if_expr(Anno, Clauses, Env) ->
    case lists:splitwith(fun(C) -> not has_port_guard(C) end, Clauses) of
        {_, []} ->
            {'if', Anno, Clauses};
        {Before, [{clause, CA, [], Guards, Body} | Following]} ->
            G = gen(Anno),
            Rest = fresh(G, Env),
            RestBody = case Following of
                           [] -> error_call(G, [{atom, G, if_clause}]);
                           _ -> if_expr(G, Following, Env)
                       end,
            RestFun = {'fun', G, {clauses, [{clause, G, [], [], [RestBody]}]}},
            GoOn = {call, G, Rest, []},
            Split = {clause, CA, [], relaxed(Guards), [checked(G, Guards, Body, GoOn)]},
            {block, G, [{match, G, Rest, RestFun},
                        {'if', Anno, Before ++ [Split, {clause, G, [], [[{atom, G, true}]], [GoOn]}]}]}
    end.

error_call(G, Args) ->
    {call, G, {remote, G, {atom, G, erlang}, {atom, G, error}}, Args}.

%% case <exact guard> of true -> Body; false -> Fallback end
checked(G, Guards, Body, Fallback) ->
    {'case', G, exact(G, Guards),
     [{clause, G, [{atom, G, true}], [], Body},
      {clause, G, [{atom, G, false}], [], [Fallback]}]}.

%% The guard sequence as a body expression: G1 orelse G2 ..., each guard
%% (a conjunction) in a try (an exception fails that guard only).
exact(G, Guards) ->
    Conj = fun(Tests) ->
                   And = lists:foldr(fun(T, Acc) ->
                                             Test = {op, G, '=:=', exact_test(T), {atom, G, true}},
                                             case Acc of
                                                 none -> Test;
                                                 _ -> {op, G, 'andalso', Test, Acc}
                                             end
                                     end, none, Tests),
                   {'try', G, [And], [],
                    [{clause, G, [{tuple, G, [{var, G, '_'}, {var, G, '_'}, {var, G, '_'}]}],
                      [], [{atom, G, false}]}], []}
           end,
    lists:foldr(fun(Tests, none) -> Conj(Tests);
                   (Tests, Acc) -> {op, G, 'orelse', Conj(Tests), Acc}
                end, none, Guards).

exact_test({call, A, {atom, FA, is_port}, [E]}) ->
    {call, A, {remote, FA, {atom, FA, ?TARGET}, {atom, FA, is_port}}, [exact_test(E)]};
exact_test({call, A, {remote, RA, {atom, MA, erlang}, {atom, FA, is_port}}, [E]}) ->
    {call, A, {remote, RA, {atom, MA, ?TARGET}, {atom, FA, is_port}}, [exact_test(E)]};
exact_test(T) when is_tuple(T) ->
    list_to_tuple([exact_test(E) || E <- tuple_to_list(T)]);
exact_test(L) when is_list(L) ->
    [exact_test(E) || E <- L];
exact_test(Leaf) ->
    Leaf.

%% A weaker guard sequence: true whenever the exact one is.
relaxed(Guards) ->
    [[relaxed_test(T) || T <- Tests] || Tests <- Guards].

relaxed_test({call, A, {atom, _, is_port}, [E]}) ->
    port_or_pid(A, E);
relaxed_test({call, A, {remote, _, {atom, _, erlang}, {atom, _, is_port}}, [E]}) ->
    port_or_pid(A, E);
relaxed_test(T) ->
    case mentions_is_port(T) of
        true -> {atom, gen(element(2, T)), true};
        false -> T
    end.

port_or_pid(A, E) ->
    {op, A, 'orelse', {call, A, {atom, A, is_port}, [E]}, {call, A, {atom, A, is_pid}, [E]}}.

%% receive and catch clauses: only the weaker guard, every is_port(E)
%% (whatever surrounds it) being is_port(E) orelse is_pid(E).
relaxed_clause({clause, Anno, Pats, Guards, Body}) ->
    {clause, Anno, Pats, port_or_pid_everywhere(Guards), Body}.

port_or_pid_everywhere({call, A, {atom, _, is_port}, [E]}) ->
    port_or_pid(A, E);
port_or_pid_everywhere({call, A, {remote, _, {atom, _, erlang}, {atom, _, is_port}}, [E]}) ->
    port_or_pid(A, E);
port_or_pid_everywhere(T) when is_tuple(T) ->
    list_to_tuple([port_or_pid_everywhere(E) || E <- tuple_to_list(T)]);
port_or_pid_everywhere(L) when is_list(L) ->
    [port_or_pid_everywhere(E) || E <- L];
port_or_pid_everywhere(Leaf) ->
    Leaf.

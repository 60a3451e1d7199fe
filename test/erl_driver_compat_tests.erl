%% EUnit tests of the pure functions of erl_driver_compat (no NIF needed):
%% format_error/1 and include_dir/0.
-module(erl_driver_compat_tests).
-include_lib("eunit/include/eunit.hrl").

%% Every error term load_driver/2 and unload_driver/1 may return (the
%% error_reason() type), with typical payloads.
error_terms() ->
    [{open_error, "libfoo.so: cannot open shared object file: No such file or directory"},
     {open_error, ""},
     {not_elf, "not an ELF file"},
     no_driver_init,
     {unsupported_functions, ["driver_async"]},
     {unsupported_functions, ["driver_async", "driver_select"]},
     {copy_error, "No space left on device"},
     {bind_error, "mprotect: Permission denied"},
     driver_init_failed,
     driver_incorrect_version,
     bad_driver_name,
     not_loaded,
     not_loaded_by_this_process,
     unloading].

format_error_test_() ->
    [{lists:flatten(io_lib:format("format_error(~0p)", [E])),
      ?_assertEqual(ok, check_string(E, erl_driver_compat:format_error(E)))}
     || E <- error_terms()].

%% Terms that are no reason of ours or of erl_ddll: badarg, as
%% erl_ddll:format_error/1 gives.
format_error_unknown_test_() ->
    [?_assertError(badarg, erl_driver_compat:format_error(T))
     || T <- [{some_future_error, 42}, "not even a term we know"]].

%% erl_ddll's texts where we return erl_ddll's names.
format_error_like_erl_ddll_test_() ->
    [{lists:flatten(io_lib:format("same text as erl_ddll:format_error(~0p)", [E])),
      ?_assertEqual(lists:flatten(erl_ddll:format_error(E)), erl_driver_compat:format_error(E))}
     || E <- [no_driver_init, driver_init_failed, driver_incorrect_version,
              bad_driver_name, not_loaded, not_loaded_by_this_process]].

%% The names of unsupported functions appear in the text.
format_error_names_functions_test() ->
    S = erl_driver_compat:format_error({unsupported_functions, ["driver_async", "driver_select"]}),
    ?assertEqual(ok, check_string(unsupported_functions, S)),
    ?assertNotEqual(nomatch, string:find(S, "driver_async")),
    ?assertNotEqual(nomatch, string:find(S, "driver_select")).

include_dir_has_header_test() ->
    Dir = erl_driver_compat:include_dir(),
    ?assert(io_lib:printable_unicode_list(Dir)),
    ?assert(filelib:is_regular(filename:join(Dir, "erl_driver.h"))),
    ?assert(filelib:is_regular(filename:join(Dir, "erl_drv_nif.h"))).

%% ok, or what is wrong with S as the description of E.
check_string(E, S) when is_list(S), S =/= [] ->
    case io_lib:printable_unicode_list(S) of
        true -> ok;
        false -> {not_a_flat_string, E, S}
    end;
check_string(E, S) ->
    {not_a_flat_string, E, S}.

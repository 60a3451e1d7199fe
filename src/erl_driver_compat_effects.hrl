%% The effects term of erl_driver_compat_effects, for guards on the hot
%% path (a plain NIF result needs no remote call). Decoded only by
%% erl_driver_compat_effects.
-define(IS_EFFECTS(T), (is_tuple(T) andalso tuple_size(T) =:= 5 andalso element(1, T) =:= '$edc')).

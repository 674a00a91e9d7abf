#!/usr/bin/env escript
main([F]) ->
    case beam_lib:chunks(F, [abstract_code]) of
        {ok, {_, [{abstract_code, {_, AC}}]}} -> io:put_chars(erl_prettypr:format(erl_syntax:form_list(AC)));
        Other -> io:format("~p~n", [Other])
    end.

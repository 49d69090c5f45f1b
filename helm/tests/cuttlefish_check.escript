#!/usr/bin/env escript
%%! -noshell
%% Validate rabbitmq.conf files with RabbitMQ's own cuttlefish schemas (the same
%% translation the broker runs at boot), offline.
%%   escript cuttlefish_check.escript PLUGINS_DIR FILE...
%% Prints "FILE OK" or "FILE ERROR <reason>" per file; exit 0 when all are OK.
main([PluginsDir | Files]) ->
    [code:add_patha(D) || D <- filelib:wildcard(PluginsDir ++ "/*/ebin")],
    Schemas = filelib:wildcard(PluginsDir ++ "/*/priv/schema/*.schema"),
    Schema = cuttlefish_schema:files(Schemas),
    Results = [check(Schema, F) || F <- Files],
    case lists:all(fun(R) -> R end, Results) of
        true -> halt(0);
        false -> halt(1)
    end.

check(Schema, File) ->
    case cuttlefish_conf:file(File) of
        {errorlist, E} ->
            io:format("~s ERROR ~p~n", [File, E]),
            false;
        Conf ->
            case cuttlefish_generator:map(Schema, Conf) of
                {error, Phase, {errorlist, Errors}} ->
                    [io:format("~s ERROR ~s: ~ts~n", [File, Phase, cuttlefish_error:xlate(Er)])
                     || Er <- Errors],
                    false;
                Res when is_list(Res) ->
                    io:format("~s OK~n", [File]),
                    true
            end
    end.

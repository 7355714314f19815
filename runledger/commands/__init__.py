"""The ``runledger`` subcommands, one module per group: each adds its parsers to the
command line (:mod:`runledger.cli`) and holds the functions they run.

Every function takes the parsed arguments and returns the exit status; a message for
the user is a :class:`~runledger.commands.context.CliError` (exit 2).
"""

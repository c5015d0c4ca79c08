"""`python -m sr_jax SUBCOMMAND ...`: the same as the `sr-jax` command."""

from sr_jax.cli import main

main()

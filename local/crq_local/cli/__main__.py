"""`python -m crq_local.cli`, as `crq demo` starts the sandbox."""

from crq_local.cli.app import main

main()

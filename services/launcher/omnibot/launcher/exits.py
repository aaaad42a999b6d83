"""The exit codes of the `omnibot` command: 0 done, 1 refused (the reasons are printed), 2 usage or
configuration error."""

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

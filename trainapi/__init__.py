"""trainapi: the command line (`trainapi serve|api|worker|keys`) and the settings every process reads."""

"""`mlxrun check`: the checks of this setup and the program its live test runs on each rank."""

from mlxrun.cli import main

main()

from opsplay.cli import main

main()

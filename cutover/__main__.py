from cutover.cli.app import main

main()

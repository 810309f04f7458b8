from voiplog.cli.main import main

main()

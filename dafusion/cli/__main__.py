from dafusion.cli import main

main()

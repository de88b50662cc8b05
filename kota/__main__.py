from kota.cli import main

main()

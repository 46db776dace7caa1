from qrt_apply.cli import main

main()

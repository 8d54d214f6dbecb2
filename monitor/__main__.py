"""`python -m monitor` is `jtm`."""

from monitor.cli import main

if __name__ == "__main__":
    main()

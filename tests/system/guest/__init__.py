"""The system test's side inside the booted machines (run there as `python3 -m guest.checks`);
guide.py also serves the image build on the host."""

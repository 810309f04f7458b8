"""Coverage-guided fuzz harnesses (atheris), one per parser and reassembler; see run.py."""

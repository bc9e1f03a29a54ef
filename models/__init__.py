"""nn.Modules and their config dataclasses: HERO, COOT, MART. No I/O beyond models/io.py."""

"""The IPython side of tablevault: cell recording, the %tv_* magics, naming a kernel."""

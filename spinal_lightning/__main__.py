"""Entry point of ``python -m spinal_lightning``.

The guard matters: DDP launchers start this module again in each worker process.
"""

from spinal_lightning.cli import main

if __name__ == "__main__":
    main()

"""``python -m lightning_gan``: the LightningCLI entry point."""

from lightning_gan.cli import main

if __name__ == "__main__":
    main()

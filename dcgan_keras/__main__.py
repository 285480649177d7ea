import sys

from dcgan_keras.cli import main

sys.exit(main())

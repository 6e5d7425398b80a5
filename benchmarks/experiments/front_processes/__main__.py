import sys

from benchmarks.experiments.front_processes.launch import main

sys.exit(main())

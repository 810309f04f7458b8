"""voiplog offline-pipeline benchmarks: capture generator and voiplog-vs-tshark timing."""

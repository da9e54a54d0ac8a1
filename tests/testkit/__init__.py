"""Helpers shared by the test suites: API emulator, kubelet simulator, process and model fixtures."""

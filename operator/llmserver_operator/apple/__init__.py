"""Apple Silicon Macs (AppleNode): placement of mlx / mlx-vlm servers and the Mac agent."""

"""Media engines: the interface (engine.py), the embedded aiortc engine and the recorder."""

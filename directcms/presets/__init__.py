"""Layer 2, the problems a student is distilled on (notebooks 20-23): the `Preset` contract and its registry
(`base`), the embedded digits preset, the SDXL preset and the paper's evaluation at scale."""

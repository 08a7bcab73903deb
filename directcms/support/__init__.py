"""Layer 1, what presets are assembled from (notebooks 10-16): run files and seeded streams, the experiment config,
the digits data and teacher, the digits and image metrics, the guidance measures, the image-caption folder."""

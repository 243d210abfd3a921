"""What users take away from a prediction besides the raw map: colour images with one convention (near = warm),
3D point clouds and meshes, metric alignment to sparse depths, float file formats, and depth videos."""

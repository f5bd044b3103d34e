"""Reading media files: probing, decoding in killable workers, segmentation into clips, thumbnails."""

"""The Sec. 4.5 videos, synthetic or a user's folder (docs/video_format.md)."""

from flatscape.ch4.detection.scenes import VideosJob, build_videos
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    build_videos(settings(VideosJob, snakemake.params.cfg), snakemake.output.videos)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)

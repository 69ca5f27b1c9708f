# Every script of this chapter imports it first: without the [pipeline] extra (pandas,
# matplotlib, ...), the job stops here on one line naming the extra, not deep inside.
from flatscape.pipeline.extras import require_pipeline

require_pipeline("flatscape.ch2")

# Chapter 3 (scale-invariant flatness): rules arrive with the flatness issue.

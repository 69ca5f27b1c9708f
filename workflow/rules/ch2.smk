# Chapter 2 (sparse coding): rules arrive with the Chapter 2 issue.

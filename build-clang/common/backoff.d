build-clang/common/backoff.o: common/backoff.c common/backoff.h

common/backoff.h:

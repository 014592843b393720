build-clang/common/log.o: common/log.c common/log.h common/util.h

common/log.h:

common/util.h:

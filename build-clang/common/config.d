build-clang/common/config.o: common/config.c common/config.h common/log.h \
  common/util.h

common/config.h:

common/log.h:

common/util.h:

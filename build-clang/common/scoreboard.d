build-clang/common/scoreboard.o: common/scoreboard.c common/scoreboard.h \
  common/log.h common/util.h

common/scoreboard.h:

common/log.h:

common/util.h:

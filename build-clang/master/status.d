build-clang/master/status.o: master/status.c master/master.h \
  master/../common/config.h master/../common/scoreboard.h \
  master/../common/util.h

master/master.h:

master/../common/config.h:

master/../common/scoreboard.h:

master/../common/util.h:

build-clang/master/signals.o: master/signals.c master/master.h \
  master/../common/config.h master/../common/scoreboard.h \
  master/../common/log.h

master/master.h:

master/../common/config.h:

master/../common/scoreboard.h:

master/../common/log.h:

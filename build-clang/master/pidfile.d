build-clang/master/pidfile.o: master/pidfile.c master/master.h \
  master/../common/config.h master/../common/scoreboard.h \
  master/../common/log.h master/../common/util.h

master/master.h:

master/../common/config.h:

master/../common/scoreboard.h:

master/../common/log.h:

master/../common/util.h:

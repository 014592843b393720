build-clang/master/children.o: master/children.c master/master.h \
  master/../common/config.h master/../common/scoreboard.h \
  master/../common/backoff.h master/../common/log.h \
  master/../common/util.h master/../worker/worker.h \
  master/../worker/../common/config.h \
  master/../worker/../common/scoreboard.h

master/master.h:

master/../common/config.h:

master/../common/scoreboard.h:

master/../common/backoff.h:

master/../common/log.h:

master/../common/util.h:

master/../worker/worker.h:

master/../worker/../common/config.h:

master/../worker/../common/scoreboard.h:

build-clang/worker/worker.o: worker/worker.c worker/worker.h \
  worker/../common/config.h worker/../common/scoreboard.h worker/app.h \
  worker/c2a_app.h worker/pipeline.h worker/../common/log.h \
  worker/../common/util.h

worker/worker.h:

worker/../common/config.h:

worker/../common/scoreboard.h:

worker/app.h:

worker/c2a_app.h:

worker/pipeline.h:

worker/../common/log.h:

worker/../common/util.h:

build-clang/worker/app.o: worker/app.c worker/app.h worker/c2a_app.h

worker/app.h:

worker/c2a_app.h:

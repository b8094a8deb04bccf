// libsystemd: readiness notification and the native journal protocol.
#ifndef KVWARM_CSYSTEMD_SHIM_H
#define KVWARM_CSYSTEMD_SHIM_H
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>
#endif

// What bindgen reads: the C part of BOINC's app API and the shim.
#include "boinc_api.h"
#include "app_ipc.h"
#include "shim.h"

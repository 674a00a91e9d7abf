/* Prints what src/ffi.rs must agree with, read from the headers the broker was built with. */
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define CONST(name) printf("pub const %s: i32 = %d;\n", #name, (int)(name))
#define OFFSET(type, field, rust) printf("pub const %s: usize = %zu;\n", rust, offsetof(struct type, field))
#define SIZE(type, rust) printf("pub const %s: usize = %zu;\n", rust, sizeof(struct type))

int main(void) {
	CONST(MOSQ_EVT_ACL_CHECK);
	CONST(MOSQ_EVT_BASIC_AUTH);
	CONST(MOSQ_EVT_TICK);
	CONST(MOSQ_EVT_DISCONNECT);
	CONST(MOSQ_ERR_SUCCESS);
	CONST(MOSQ_ERR_AUTH);
	CONST(MOSQ_ERR_ACL_DENIED);
	CONST(MOSQ_ERR_PLUGIN_DEFER);
	CONST(MOSQ_ERR_UNKNOWN);
	CONST(MOSQ_ACL_READ);
	CONST(MOSQ_ACL_WRITE);
	CONST(MOSQ_ACL_SUBSCRIBE);
	CONST(MOSQ_ACL_UNSUBSCRIBE);
	CONST(MOSQ_LOG_NOTICE);
	CONST(MOSQ_LOG_WARNING);
	CONST(MOSQ_LOG_ERR);
	CONST(SIGHUP);
	OFFSET(mosquitto_evt_basic_auth, client, "BASIC_AUTH_CLIENT");
	OFFSET(mosquitto_evt_basic_auth, username, "BASIC_AUTH_USERNAME");
	OFFSET(mosquitto_evt_basic_auth, password, "BASIC_AUTH_PASSWORD");
	SIZE(mosquitto_evt_basic_auth, "BASIC_AUTH_SIZE");
	OFFSET(mosquitto_evt_acl_check, client, "ACL_CHECK_CLIENT");
	OFFSET(mosquitto_evt_acl_check, topic, "ACL_CHECK_TOPIC");
	OFFSET(mosquitto_evt_acl_check, access, "ACL_CHECK_ACCESS");
	SIZE(mosquitto_evt_acl_check, "ACL_CHECK_SIZE");
	OFFSET(mosquitto_evt_disconnect, client, "DISCONNECT_CLIENT");
	SIZE(mosquitto_evt_disconnect, "DISCONNECT_SIZE");
	OFFSET(mosquitto_opt, key, "OPT_KEY");
	OFFSET(mosquitto_opt, value, "OPT_VALUE");
	SIZE(mosquitto_opt, "OPT_SIZE");
	return 0;
}

"""Push notifications: devices and topics, sending through the job queue, APNs and FCM."""

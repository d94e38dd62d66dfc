-- Clinics and queues: created and changed (part of a script, see lib.lua).

-- Definition changes: booleans are kept as '1'/'0' like everywhere in the hashes.
local function hset_fields(key, fields)
  local flat = {}
  for k, v in pairs(fields) do
    if type(v) == 'boolean' then v = v and '1' or '0' end
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
end

function ops.create_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 1 then return fail('conflict', 'clinic ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.clinic(A.id), 'id', A.id, 'name', A.name, 'timezone', A.timezone,
             'mask_names', A.mask_names and '1' or '0', 'lang', A.lang, 'created_at', NOW)
  redis.call('SADD', 'qt:clinics', A.id)
  local v = emit(A.id, 'clinic_created', nil, {}, {}, {clinic_state = clinic_state(A.id)})
  return cjson.encode({ok = true, v = v, clinic = clinic_state(A.id)})
end

function ops.update_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 0 then return fail('not_found', 'unknown clinic ' .. A.id, 'clinic') end
  hset_fields(K.clinic(A.id), A.fields)
  local v = emit(A.id, 'clinic_updated', nil, {}, {}, {clinic_state = clinic_state(A.id)})
  return cjson.encode({ok = true, v = v, clinic = clinic_state(A.id)})
end

function ops.create_queue()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  if redis.call('EXISTS', K.queue(A.id)) == 1 then return fail('conflict', 'queue ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.queue(A.id), 'id', A.id, 'clinic', A.clinic, 'name', A.name, 'prefix', A.prefix,
             'avg_service_s', A.avg_service_s, 'ema_s', A.avg_service_s, 'paused', '0',
             'self_checkin', A.self_checkin and '1' or '0', 'notify_ahead', A.notify_ahead, 'created_at', NOW)
  redis.call('ZADD', K.clinic_queues(A.clinic), redis.call('ZCARD', K.clinic_queues(A.clinic)), A.id)
  local v = emit(A.clinic, 'queue_created', A.id, {}, {queue_state(A.id)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.id)})
end

function ops.update_queue()
  local q = hgetall(K.queue(A.id))
  if not q then return fail('not_found', 'unknown queue ' .. A.id, 'queue') end
  hset_fields(K.queue(A.id), A.fields)
  local v = emit(q.clinic, 'queue_updated', A.id, {}, {queue_state(A.id)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.id)})
end


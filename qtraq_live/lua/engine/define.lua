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

-- The event of a definition change, and the answer: the new state.
local function clinic_changed(c, etype)
  local cs = clinic_json(hgetall(K.clinic(c)))
  local v = emit(c, etype, nil, {}, {}, ',"clinic_state":' .. cs)
  return '{"ok":true,"v":' .. v .. ',"clinic":' .. cs .. '}'
end

local function queue_changed(c, qid, etype)
  local qs = queue_json(queue_hash(qid))
  local v = emit(c, etype, qid, {}, {qs})
  return '{"ok":true,"v":' .. v .. ',"queue":' .. qs .. '}'
end

function ops.create_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 1 then return fail('conflict', 'clinic ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.clinic(A.id), 'id', A.id, 'name', A.name, 'timezone', A.timezone,
             'mask_names', A.mask_names and '1' or '0', 'lang', A.lang, 'region', A.region, 'created_at', NOW_S)
  redis.call('SADD', KEY_CLINICS, A.id)
  return clinic_changed(A.id, 'clinic_created')
end

function ops.update_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 0 then return fail('not_found', 'unknown clinic ' .. A.id, 'clinic') end
  hset_fields(K.clinic(A.id), A.fields)
  return clinic_changed(A.id, 'clinic_updated')
end

function ops.create_queue()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  if redis.call('EXISTS', K.queue(A.id)) == 1 then return fail('conflict', 'queue ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.queue(A.id), 'id', A.id, 'clinic', A.clinic, 'name', A.name, 'prefix', A.prefix,
             'avg_service_s', A.avg_service_s, 'ema_s', A.avg_service_s, 'paused', '0',
             'self_checkin', A.self_checkin and '1' or '0', 'notify_ahead', A.notify_ahead, 'created_at', NOW_S)
  redis.call('ZADD', K.clinic_queues(A.clinic), redis.call('ZCARD', K.clinic_queues(A.clinic)), A.id)
  return queue_changed(A.clinic, A.id, 'queue_created')
end

function ops.update_queue()
  local q = queue_hash(A.id)
  if not q then return fail('not_found', 'unknown queue ' .. A.id, 'queue') end
  hset_fields(K.queue(A.id), A.fields)
  return queue_changed(q.clinic, A.id, 'queue_updated')
end

